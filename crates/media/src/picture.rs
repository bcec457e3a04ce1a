//! Decoded pictures as the engine hands them to a UI: I420 (YUV 4:2:0,
//! 8 bits, BT.601 limited range as VP8 and the test sources make them),
//! planes packed one after another without padding.
//!
//! A `width`×`height` picture is the Y plane (`width`×`height` bytes), then
//! the U plane and the V plane, each `(width+1)/2`×`(height+1)/2` bytes.
//! That is 1.5 bytes a pixel where RGBA takes 4: what a UI process moves
//! per picture (the desktop app's webview gets them through WebKit's IPC,
//! where the size of a picture was the cost: docs/calls.md).

/// The width (and height) of a chroma plane for a luma side of `n`.
pub fn chroma(n: u32) -> u32 {
    n.div_ceil(2)
}

/// Bytes of a packed `width`×`height` I420 picture.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (chroma(width) as usize, chroma(height) as usize);
    w * h + 2 * cw * ch
}

/// Scales a packed I420 picture to `to_w`×`to_h` (nearest neighbour, plane
/// by plane), appending the packed result to `out`. `src` must hold
/// [`i420_len`]`(w, h)` bytes and every side must be at least 1.
pub fn scale_i420(src: &[u8], w: u32, h: u32, to_w: u32, to_h: u32, out: &mut Vec<u8>) {
    assert!(w > 0 && h > 0 && to_w > 0 && to_h > 0, "empty picture");
    assert_eq!(src.len(), i420_len(w, h), "not a packed {w}x{h} I420 picture");
    let (y, chroma_planes) = src.split_at(w as usize * h as usize);
    let (u, v) = chroma_planes.split_at(chroma_planes.len() / 2);
    out.reserve(i420_len(to_w, to_h));
    scale_plane(y, w, h, to_w, to_h, out);
    let (cw, ch, to_cw, to_ch) = (chroma(w), chroma(h), chroma(to_w), chroma(to_h));
    scale_plane(u, cw, ch, to_cw, to_ch, out);
    scale_plane(v, cw, ch, to_cw, to_ch, out);
}

fn scale_plane(src: &[u8], w: u32, h: u32, to_w: u32, to_h: u32, out: &mut Vec<u8>) {
    let (w, h, to_w, to_h) = (w as usize, h as usize, to_w as usize, to_h as usize);
    let xs: Vec<usize> = (0..to_w).map(|x| x * w / to_w).collect();
    for y in 0..to_h {
        let row = &src[(y * h / to_h) * w..][..w];
        out.extend(xs.iter().map(|&x| row[x]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture whose every sample says where it is: Y = x + 10·y, U =
    /// 100 + x + 10·y, V = 200 + x + 10·y (x, y in its own plane).
    fn picture(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for base in [0u8, 100, 200] {
            let (pw, ph) = if base == 0 { (w, h) } else { (chroma(w), chroma(h)) };
            for y in 0..ph {
                for x in 0..pw {
                    v.push(base + x as u8 + 10 * y as u8);
                }
            }
        }
        v
    }

    #[test]
    fn sizes_round_the_chroma_planes_up() {
        assert_eq!(i420_len(640, 480), 640 * 480 * 3 / 2);
        assert_eq!(i420_len(3, 3), 9 + 2 * 4);
        assert_eq!(i420_len(1, 1), 3);
    }

    #[test]
    fn scaling_takes_the_nearest_sample_of_each_plane() {
        let src = picture(4, 4);
        let mut out = Vec::new();
        scale_i420(&src, 4, 4, 2, 2, &mut out);
        assert_eq!(out.len(), i420_len(2, 2));
        assert_eq!(out, vec![0, 2, 20, 22, 100, 200], "Y from even rows and columns, one U and one V");
        // An odd target keeps every plane's own size.
        let mut odd = Vec::new();
        scale_i420(&src, 4, 4, 3, 1, &mut odd);
        assert_eq!(odd, vec![0, 1, 2, 100, 101, 200, 201]);
    }

    #[test]
    fn the_same_size_is_a_copy() {
        let src = picture(5, 3);
        let mut out = Vec::new();
        scale_i420(&src, 5, 3, 5, 3, &mut out);
        assert_eq!(out, src);
    }
}
