// Applies the theme: the `dark` class on <html>, following the OS while the
// setting is "system", and the document language.
import { watchEffect, ref, onScopeDispose } from 'vue'
import { useI18n } from 'vue-i18n'
import { useSettingsStore } from '../stores/settings'
import { systemLanguage } from '../i18n'

export function useTheme(): void {
  const settings = useSettingsStore()
  const { locale } = useI18n()
  const media = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null
  const osDark = ref(media?.matches ?? false)
  const onChange = (e: MediaQueryListEvent) => (osDark.value = e.matches)
  media?.addEventListener?.('change', onChange)
  onScopeDispose(() => media?.removeEventListener?.('change', onChange))

  watchEffect(() => {
    const theme = settings.settings.theme
    const dark = theme === 'dark' || (theme === 'system' && osDark.value)
    document.documentElement.classList.toggle('dark', dark)
    document.documentElement.style.colorScheme = dark ? 'dark' : 'light'
  })

  watchEffect(() => {
    const lang = settings.settings.language ?? systemLanguage()
    locale.value = lang
    document.documentElement.lang = lang
  })
}
