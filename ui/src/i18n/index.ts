// vue-i18n set-up: English and Simplified Chinese, defaulting from the OS
// (navigator.language) until the user picks a language in Settings.
import { createI18n } from 'vue-i18n'
import type { Language } from '../types/app'
import en from './en'
import zhCN from './zh-CN'

export type MessageSchema = typeof en

export const messages = { en, 'zh-CN': zhCN } satisfies Record<Language, MessageSchema>
export const LANGUAGES: Array<{ code: Language; label: string }> = [
  { code: 'en', label: 'English' },
  { code: 'zh-CN', label: '简体中文' },
]

/** The supported language closest to a BCP 47 tag (zh-* → zh-CN, else en). */
export function languageFor(tag: string | undefined | null): Language {
  return tag && tag.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en'
}

export function systemLanguage(): Language {
  return languageFor(typeof navigator !== 'undefined' ? navigator.language : 'en')
}

export function createAppI18n(locale: Language = systemLanguage()) {
  return createI18n<[MessageSchema], Language, false>({
    legacy: false,
    locale,
    fallbackLocale: 'en',
    messages,
    missingWarn: false,
    fallbackWarn: false,
  })
}
