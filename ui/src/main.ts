// Entry: picks the transport (Tauri inside the app, the demo mock in a plain
// browser), then mounts the app.
import { createApp } from 'vue'
import { createPinia } from 'pinia'
import './style.css'
import App from './App.vue'
import { createAppI18n } from './i18n'
import { inTauri, setTransport, TauriTransport } from './services/transport'
import { boot } from './stores/startup'
import { useSettingsStore } from './stores/settings'

async function main() {
  const params = new URLSearchParams(location.search)
  const demo = inTauri() ? null : await import('./services/demo')
  setTransport(demo ? demo.startDemo(params) : new TauriTransport())
  const app = createApp(App)
  const pinia = createPinia()
  app.use(pinia)
  app.use(createAppI18n())
  // Settings before the first paint: no flash of the wrong theme or language.
  await useSettingsStore(pinia).load()
  app.mount('#app')
  await boot()
  await demo?.applyScene(params)
}

void main()
