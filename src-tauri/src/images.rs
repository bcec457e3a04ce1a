//! What a peer's image must be before the webview decodes it: a PNG, JPEG,
//! GIF or WebP by its own bytes (whatever type the sender claimed), of at
//! most [`MAX_PIXELS`]. The webview decodes a shown image at its full size,
//! so a few kilobytes of PNG or JPEG declaring 20,000 × 20,000 pixels would
//! cost its web process 1.6 GB the moment the message scrolls into view.
//! Headers are read by `courier_client::media::image_info` (no pixel is
//! decoded here). A refused image is offered as a file instead.

use crate::error::CmdError;
use std::path::Path;

/// The largest image shown inline: 50 megapixels (an 8,000 × 6,000 phone
/// photo), about 200 MB once decoded to RGBA.
pub const MAX_PIXELS: u64 = 50_000_000;

/// Checks the first bytes of an image (its header).
///
/// # Errors
/// `not_an_image` for any other format (SVG, HTML, a program, an unreadable
/// header), `image_too_large` past [`MAX_PIXELS`].
pub fn check_image(head: &[u8]) -> Result<(), CmdError> {
    let Some(image) = courier_client::media::image_info(head) else {
        return Err(CmdError::new("not_an_image", "this file is not a PNG, JPEG, GIF or WebP image"));
    };
    let pixels = u64::from(image.width).saturating_mul(u64::from(image.height));
    if pixels > MAX_PIXELS {
        return Err(CmdError::new(
            "image_too_large",
            format!("this image is {} × {} pixels, too large to show here", image.width, image.height),
        ));
    }
    Ok(())
}

/// How much of a file [`check_image_file`] reads: a phone photo's EXIF
/// (with its thumbnail) and colour profile can put a JPEG's frame header
/// past the first 64 KiB; 2 MiB holds every header seen in practice, and
/// is read into memory so that a JPEG of a million tiny segments costs no
/// system call per segment.
pub const HEAD_BYTES: u64 = 2 << 20;

/// [`check_image`] on the first [`HEAD_BYTES`] of a file.
///
/// # Errors
/// As [`check_image`], or when the file cannot be read.
pub fn check_image_file(path: &Path) -> Result<(), CmdError> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)?.take(HEAD_BYTES).read_to_end(&mut head)?;
    check_image(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG signature and header chunk declaring `w` × `h` (no pixel data:
    /// a bomb needs no more to be believed).
    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend(w.to_be_bytes());
        v.extend(h.to_be_bytes());
        v.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    /// A baseline JPEG header (SOI, SOF0) declaring `w` × `h`.
    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
        v.extend(h.to_be_bytes());
        v.extend(w.to_be_bytes());
        v.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v
    }

    #[test]
    fn huge_images_never_reach_the_webview() {
        for bomb in [png(20_000, 20_000), png(u32::MAX, u32::MAX), jpeg(65_000, 65_000), jpeg(10_000, 5_001)]
        {
            assert_eq!(check_image(&bomb).unwrap_err().code, "image_too_large");
        }
        for fine in [png(8_000, 6_000), png(1, 1), jpeg(4_032, 3_024)] {
            assert!(check_image(&fine).is_ok());
        }
        let e = check_image(&png(30_000, 20_000)).unwrap_err();
        assert!(e.message.contains("30000 × 20000"), "{}", e.message);
    }

    #[test]
    fn only_the_four_inline_formats_are_shown_whatever_the_claimed_type() {
        for other in [
            &b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"[..],
            b"<!doctype html><script>alert(1)</script>",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00",
            b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00",
            b"",
            b"\x89PNG\r\n\x1a\n",
        ] {
            assert_eq!(check_image(other).unwrap_err().code, "not_an_image", "{other:?}");
        }
        let gif = b"GIF89a\x40\x01\xf0\x00\xf7\x00\x00\x00\x00\x00";
        assert!(check_image(gif).is_ok());
    }

    /// A phone photo: EXIF (with its thumbnail) and a colour profile before
    /// the frame header, which then lies past the first 64 KiB.
    #[test]
    fn a_photo_whose_frame_header_lies_past_its_first_64_kib_is_shown() {
        let segment = |marker: u8, len: usize| {
            let mut v = vec![0xFF, marker];
            v.extend(((len + 2) as u16).to_be_bytes());
            v.resize(len + 4, 0x20);
            v
        };
        let mut photo = vec![0xFF, 0xD8];
        photo.extend(segment(0xE1, 65_000));
        photo.extend(segment(0xE2, 30_000));
        photo.extend(&jpeg(4_032, 3_024)[2..]);
        photo.resize(photo.len() + 200_000, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        std::fs::write(&path, &photo).unwrap();
        check_image_file(&path).unwrap();
        let mut bomb = photo[..2 + 65_004 + 30_004].to_vec();
        bomb.extend(&jpeg(20_000, 20_000)[2..]);
        std::fs::write(&path, &bomb).unwrap();
        assert_eq!(check_image_file(&path).unwrap_err().code, "image_too_large");
        // Segments to the end of the header read and beyond: offered as a
        // file, after reading 2 MiB once.
        let mut tiny = vec![0xFF, 0xD8];
        while tiny.len() < 3 << 20 {
            tiny.extend([0xFF, 0xE3, 0, 2]);
        }
        std::fs::write(&path, &tiny).unwrap();
        assert_eq!(check_image_file(&path).unwrap_err().code, "not_an_image");
    }

    #[test]
    fn a_file_is_read_only_up_to_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut bytes = png(640, 480);
        bytes.resize(1 << 20, 0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(check_image_file(&path).is_ok());
        std::fs::write(&path, png(20_000, 20_000)).unwrap();
        assert_eq!(check_image_file(&path).unwrap_err().code, "image_too_large");
    }
}
