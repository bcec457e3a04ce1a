// Entry: picks the transport (Tauri inside the app, the demo mock in a plain
// browser), then mounts the app.
import { createApp } from 'vue'
import { createPinia } from 'pinia'
import './style.css'
import App from './App.vue'
import { createAppI18n } from './i18n'
import { inTauri, setTransport, TauriTransport } from './services/transport'
import { boot } from './stores/startup'

async function main() {
  const params = new URLSearchParams(location.search)
  const demo = inTauri() ? null : await import('./services/demo')
  setTransport(demo ? demo.startDemo(params) : new TauriTransport())
  const app = createApp(App)
  app.use(createPinia())
  app.use(createAppI18n())
  app.mount('#app')
  await boot()
  await demo?.applyScene(params)
}

void main()
