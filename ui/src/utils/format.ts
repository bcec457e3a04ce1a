// Dates, sizes and relative times in the user's language.

export const DAY_MS = 86_400_000

function startOfDay(ts: number): number {
  const d = new Date(ts)
  d.setHours(0, 0, 0, 0)
  return d.getTime()
}

export function sameDay(a: number, b: number): boolean {
  return startOfDay(a) === startOfDay(b)
}

/** "today", "yesterday" or null (then show the date). */
export function relativeDay(ts: number, now: number): 'today' | 'yesterday' | null {
  const diff = Math.round((startOfDay(now) - startOfDay(ts)) / DAY_MS)
  if (diff === 0) return 'today'
  if (diff === 1) return 'yesterday'
  return null
}

export function formatDate(ts: number, locale: string, now: number): string {
  const d = new Date(ts)
  const sameYear = d.getFullYear() === new Date(now).getFullYear()
  return new Intl.DateTimeFormat(locale, sameYear ? { month: 'long', day: 'numeric', weekday: 'long' } : { dateStyle: 'long' }).format(d)
}

export function formatTime(ts: number, locale: string): string {
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' }).format(new Date(ts))
}

export function formatFull(ts: number, locale: string): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'short' }).format(new Date(ts))
}

/** A compact time for list rows: the time today, a weekday this week, else a short date. */
export function formatListTime(ts: number, locale: string, now: number): string {
  if (!ts) return ''
  if (sameDay(ts, now)) return formatTime(ts, locale)
  if (now - ts < 6 * DAY_MS) return new Intl.DateTimeFormat(locale, { weekday: 'short' }).format(new Date(ts))
  return new Intl.DateTimeFormat(locale, { month: 'numeric', day: 'numeric' }).format(new Date(ts))
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = bytes / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`
}

/** "5 minutes ago" etc. in the locale. */
export function formatAgo(ts: number, locale: string, now: number): string {
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' })
  const s = Math.round((ts - now) / 1000)
  const abs = Math.abs(s)
  if (abs < 60) return rtf.format(0, 'second')
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute')
  if (abs < DAY_MS / 1000) return rtf.format(Math.round(s / 3600), 'hour')
  return rtf.format(Math.round(s / 86400), 'day')
}
