// Server limits (protocol v1.2) are said in the user's language.
import { describe, expect, it } from 'vitest'
import { createAppI18n } from '../i18n'
import { errorText, limitToast } from './errors'

describe('limit errors in words', () => {
  const say = (lang: 'en' | 'zh-CN') => {
    const { t } = createAppI18n(lang).global
    return (k: string, p: Record<string, string>) => t(k, p)
  }

  it('names each cap the server can name, in English and Chinese', () => {
    for (const limit of ['reaction_keys', 'reactions_per_user', 'channels_created', 'sessions', 'upload_bytes_day', 'pending_invites', 'pins']) {
      const e = { code: 'limit_reached', message: 'server words', limit }
      expect(limitToast(e).key).toBe(`limits.${limit}`)
      for (const lang of ['en', 'zh-CN'] as const) {
        const text = errorText(e, say(lang))
        expect(text).not.toContain('limits.')
        expect(text).not.toContain('server words')
      }
    }
    expect(errorText({ code: 'limit_reached', message: 'x', limit: 'channels_created' }, say('en'))).toContain('channels')
    expect(errorText({ code: 'limit_reached', message: 'x', limit: 'upload_bytes_day' }, say('zh-CN'))).toContain('上传')
  })

  it('says "too fast" for rate_limited, and passes other errors through', () => {
    expect(errorText({ code: 'rate_limited', message: 'slow down' }, say('en'))).toMatch(/too fast/)
    expect(errorText({ code: 'limit_reached', message: 'a new cap', limit: 'future' }, say('en'))).toContain('a new cap')
    expect(errorText({ code: 'forbidden', message: 'not a member' }, say('en'))).toBe('not a member')
  })
})
