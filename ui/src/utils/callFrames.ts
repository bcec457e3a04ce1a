// The raw picture answers of `call_frame` (src-tauri/src/calls_frames.rs):
// the packed I420 planes of a picture (Y width×height, then U and V, each
// ceil(width/2)×ceil(height/2)), then a 20-byte little-endian trailer
// `seq u32, width u32, height u32, at_ms f64` (when the engine delivered it).
// The page makes the RGBA it draws: a picture crosses from the shell as 1.5
// bytes a pixel instead of 4.

export const TRAILER_LEN = 20

export interface CallFrame {
  seq: number
  width: number
  height: number
  /** Unix ms when the shell received the picture (same clock as Date.now()). */
  atMs: number
  /** The packed I420 planes, a view on the answer (no copy). */
  planes: Uint8Array<ArrayBuffer>
}

/** Bytes of a packed `width`×`height` I420 picture. */
export function i420Len(width: number, height: number): number {
  return width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2)
}

/** The picture of an answer, or null for an empty or malformed one. */
export function parseFrame(buf: ArrayBuffer): CallFrame | null {
  if (buf.byteLength <= TRAILER_LEN) return null
  const t = new DataView(buf, buf.byteLength - TRAILER_LEN)
  const seq = t.getUint32(0, true)
  const width = t.getUint32(4, true)
  const height = t.getUint32(8, true)
  const atMs = t.getFloat64(12, true)
  if (width === 0 || height === 0 || i420Len(width, height) !== buf.byteLength - TRAILER_LEN) return null
  return { seq, width, height, atMs, planes: new Uint8Array(buf, 0, i420Len(width, height)) }
}

/**
 * Writes the picture as RGBA into `out` (width × height × 4 bytes; a
 * clamped array, so results outside 0–255 saturate). BT.601 limited range,
 * in integers: what VP8 and the engine's test sources produce.
 */
export function toRgba(f: CallFrame, out: Uint8ClampedArray): void {
  const { width: w, height: h, planes: p } = f
  const cw = Math.ceil(w / 2)
  const uAt = w * h
  const vAt = uAt + cw * Math.ceil(h / 2)
  let o = 0
  for (let y = 0; y < h; y++) {
    const row = y * w
    const crow = (y >> 1) * cw
    for (let x = 0; x < w; x++) {
      const c = 298 * (p[row + x] - 16) + 128
      const d = p[uAt + crow + (x >> 1)] - 128
      const e = p[vAt + crow + (x >> 1)] - 128
      out[o] = (c + 409 * e) >> 8
      out[o + 1] = (c - 100 * d - 208 * e) >> 8
      out[o + 2] = (c + 516 * d) >> 8
      out[o + 3] = 255
      o += 4
    }
  }
}

/** Builds an answer from packed I420 planes (tests and the demo). */
export function frameBytes(seq: number, width: number, height: number, planes: number[] | Uint8Array, atMs = Date.now()): ArrayBuffer {
  const len = i420Len(width, height)
  const buf = new ArrayBuffer(len + TRAILER_LEN)
  new Uint8Array(buf).set(planes.slice(0, len))
  const t = new DataView(buf, len)
  t.setUint32(0, seq, true)
  t.setUint32(4, width, true)
  t.setUint32(8, height, true)
  t.setFloat64(12, atMs, true)
  return buf
}
