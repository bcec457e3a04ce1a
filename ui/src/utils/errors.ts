// Words for errors the server names (protocol v1.2 limits): a refused
// action says which limit in the user's language, not the server's English.
import type { TransportError } from '../types/app'
import { toTransportError } from '../services/transport'

/** Caps the server names in `err.limit` (protocol v1.2), each with its own words. */
export const KNOWN_LIMITS = ['reaction_keys', 'reactions_per_user', 'channels_created', 'sessions', 'upload_bytes_day', 'pending_invites', 'pins']

/** The i18n key and parameters for `rate_limited` and `limit_reached` (which cap, when known). */
export function limitToast(err: TransportError): { key: string; params: Record<string, string> } {
  if (err.code === 'rate_limited') return { key: 'limits.rate', params: {} }
  if (err.limit && KNOWN_LIMITS.includes(err.limit)) return { key: `limits.${err.limit}`, params: {} }
  return { key: 'limits.other', params: { message: err.message } }
}

/** Whether an error is a server limit (`rate_limited`, `limit_reached`). */
export function isLimit(err: TransportError): boolean {
  return err.code === 'rate_limited' || err.code === 'limit_reached'
}

/**
 * The text to show for a failed action: the limit in words when the server
 * named one, else the server's message.
 */
export function errorText(e: unknown, t: (key: string, params: Record<string, string>) => string): string {
  const err = toTransportError(e)
  if (!isLimit(err)) return err.message
  const { key, params } = limitToast(err)
  return t(key, params)
}
