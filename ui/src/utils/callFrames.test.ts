import { describe, expect, it } from 'vitest'
import { frameBytes, i420Len, parseFrame, toRgba, TRAILER_LEN } from './callFrames'

/** The RGBA of a picture whose every pixel is (y, u, v). */
function rgbaOf(y: number, u: number, v: number): number[] {
  const f = parseFrame(frameBytes(1, 1, 1, [y, u, v]))!
  const out = new Uint8ClampedArray(4)
  toRgba(f, out)
  return [...out]
}

describe('call pictures (I420 from the shell)', () => {
  it('sizes the chroma planes rounded up', () => {
    expect(i420Len(640, 480)).toBe(640 * 480 * 1.5)
    expect(i420Len(3, 3)).toBe(9 + 2 * 4)
    expect(i420Len(1, 1)).toBe(3)
  })

  it('reads the trailer and the planes without copying', () => {
    const buf = frameBytes(9, 3, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 1234.5)
    const f = parseFrame(buf)!
    expect(f).toMatchObject({ seq: 9, width: 3, height: 2, atMs: 1234.5 })
    expect([...f.planes]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(f.planes.buffer).toBe(buf)
  })

  it('refuses empty, short and RGBA-sized answers', () => {
    expect(parseFrame(new ArrayBuffer(0))).toBeNull()
    expect(parseFrame(new ArrayBuffer(TRAILER_LEN))).toBeNull()
    const rgba = new ArrayBuffer(2 * 2 * 4 + TRAILER_LEN)
    const t = new DataView(rgba, 16)
    t.setUint32(4, 2, true)
    t.setUint32(8, 2, true)
    expect(parseFrame(rgba)).toBeNull()
  })

  it('turns BT.601 limited-range colours into RGBA', () => {
    expect(rgbaOf(235, 128, 128)).toEqual([255, 255, 255, 255])
    expect(rgbaOf(16, 128, 128)).toEqual([0, 0, 0, 255])
    expect(rgbaOf(81, 90, 240)).toEqual([255, 0, 0, 255])
    expect(rgbaOf(145, 54, 34)).toEqual([0, 255, 1, 255])
    expect(rgbaOf(41, 240, 110)).toEqual([0, 0, 255, 255])
  })

  it('shares one chroma sample among each 2×2 block, odd edges included', () => {
    // 3×2: Y all mid-grey; U/V 2×1: left block neutral, right block red-ish.
    const f = parseFrame(frameBytes(1, 3, 2, [126, 126, 126, 126, 126, 126, 128, 90, 128, 240]))!
    const out = new Uint8ClampedArray(3 * 2 * 4)
    toRgba(f, out)
    const px = (x: number, y: number) => [...out.slice((y * 3 + x) * 4, (y * 3 + x) * 4 + 4)]
    expect(px(0, 0)).toEqual(px(1, 1))
    expect(px(0, 0)[0]).toBe(px(0, 0)[1])
    expect(px(2, 0)).toEqual(px(2, 1))
    expect(px(2, 0)[0]).toBeGreaterThan(200)
    expect(px(2, 0)[2]).toBeLessThan(100)
  })
})
