// The raw picture answers of `call_frame` (src-tauri/src/calls_frames.rs):
// RGBA rows, then a 20-byte little-endian trailer
// `seq u32, width u32, height u32, at_ms f64` (when the engine delivered it).

export const TRAILER_LEN = 20

export interface CallFrame {
  seq: number
  width: number
  height: number
  /** Unix ms when the shell received the picture (same clock as Date.now()). */
  atMs: number
  /** width × height × 4 bytes, a view on the answer (no copy). */
  pixels: Uint8ClampedArray<ArrayBuffer>
}

/** The picture of an answer, or null for an empty or malformed one. */
export function parseFrame(buf: ArrayBuffer): CallFrame | null {
  if (buf.byteLength <= TRAILER_LEN) return null
  const t = new DataView(buf, buf.byteLength - TRAILER_LEN)
  const seq = t.getUint32(0, true)
  const width = t.getUint32(4, true)
  const height = t.getUint32(8, true)
  const atMs = t.getFloat64(12, true)
  if (width === 0 || height === 0 || width * height * 4 !== buf.byteLength - TRAILER_LEN) return null
  return { seq, width, height, atMs, pixels: new Uint8ClampedArray(buf, 0, width * height * 4) }
}

/** Builds an answer (tests and the demo). */
export function frameBytes(seq: number, width: number, height: number, rgba: number[] | Uint8Array, atMs = Date.now()): ArrayBuffer {
  const buf = new ArrayBuffer(width * height * 4 + TRAILER_LEN)
  new Uint8Array(buf).set(rgba.slice(0, width * height * 4))
  const t = new DataView(buf, width * height * 4)
  t.setUint32(0, seq, true)
  t.setUint32(4, width, true)
  t.setUint32(8, height, true)
  t.setFloat64(12, atMs, true)
  return buf
}
