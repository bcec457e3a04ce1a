/// <reference types="vitest/config" />
// Vite + Vitest config for the Courier UI. The project root is `ui/`; the
// Tauri shell loads `ui/dist` (build) or the dev server on port 1420.
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import tailwindcss from '@tailwindcss/vite'

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [vue(), tailwindcss()],
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 800,
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.ts'],
    // Keep the shared 2-core machine usable while Rust builds run.
    maxWorkers: 2,
  },
})
