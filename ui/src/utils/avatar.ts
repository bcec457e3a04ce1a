// Generated avatars: a fixed palette and a few geometric motifs, so avatars
// need no network. A profile's avatar is `avatar:<n>` (a preset) or a media
// id; users without one get a preset derived from their id.

/** Background colours, each with white text at ≥ 4.5:1 contrast. */
export const AVATAR_PALETTE = [
  '#2449e0', '#7c3aed', '#c026d3', '#be185d', '#c2410c', '#a16207',
  '#4d7c0f', '#047857', '#0f766e', '#0e7490', '#475569', '#9f1239',
] as const

export const AVATAR_SHAPES = ['circle', 'triangle', 'diamond', 'stripes'] as const
export type AvatarShape = (typeof AVATAR_SHAPES)[number]

/** How many presets the picker offers. */
export const PRESET_COUNT = 12

export interface AvatarLook {
  color: string
  shape: AvatarShape
}

function hash(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  return h >>> 0
}

/** The preset number of `avatar:<n>`, else null. */
export function presetNumber(avatar: string | undefined): number | null {
  const m = /^avatar:(\d{1,4})$/.exec(avatar ?? '')
  return m ? Number(m[1]) : null
}

export function lookOf(user: string, avatar?: string): AvatarLook {
  const n = presetNumber(avatar) ?? hash(user)
  return { color: AVATAR_PALETTE[n % AVATAR_PALETTE.length], shape: AVATAR_SHAPES[(n * 7 + 3) % AVATAR_SHAPES.length] }
}

/** One or two letters: initials of a Latin name, the first character of a CJK name. */
export function initialsOf(name: string): string {
  const t = name.trim()
  if (!t) return '?'
  const first = [...t][0]
  if (/[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/.test(first)) return first
  const words = t.split(/[\s._-]+/).filter(Boolean)
  const letters = words.length > 1 ? [...words[0]][0] + [...words[1]][0] : [...words[0]].slice(0, 1).join('')
  return letters.toUpperCase()
}

export function randomPreset(): string {
  return `avatar:${Math.floor(Math.random() * PRESET_COUNT)}`
}
