/**
 * Courier design tokens. Loaded by Tailwind v4 from ui/src/style.css with
 * `@config`. One brand hue (indigo-blue, 50–950), neutrals, radius, shadow.
 * Dark mode follows the `dark` class on <html>, which the UI sets from the
 * user's theme choice (or the OS while the choice is "system").
 * @type {import('tailwindcss').Config}
 */
export default {
  darkMode: 'class',
  content: ['./ui/index.html', './ui/src/**/*.{vue,ts}'],
  theme: {
    extend: {
      colors: {
        brand: {
          50: '#eef4ff',
          100: '#dae6ff',
          200: '#bdd3ff',
          300: '#90b6ff',
          400: '#5c8eff',
          500: '#3867f7',
          600: '#2449e0',
          700: '#1d39bd',
          800: '#1e3399',
          900: '#1e3079',
          950: '#161f4a',
        },
        // Neutrals with a faint blue cast so the brand tint sits naturally.
        ink: {
          50: '#f7f8fa',
          100: '#eef0f4',
          200: '#dfe3ea',
          300: '#c5cbd6',
          400: '#9aa3b2',
          500: '#6b7587',
          600: '#505a6b',
          700: '#3b4352',
          800: '#262c37',
          850: '#1d222b',
          900: '#161a21',
          950: '#0e1116',
        },
        online: '#22a35a',
        away: '#d98c0b',
        danger: '#d6363b',
      },
      fontFamily: {
        sans: [
          'system-ui',
          '-apple-system',
          '"Segoe UI"',
          '"PingFang SC"',
          '"Microsoft YaHei"',
          '"Noto Sans CJK SC"',
          'sans-serif',
        ],
        // Emoji glyphs alone (picker, reactions): the colour fonts first, so a
        // text font with a few monochrome emoji (DejaVu Sans) does not win.
        emoji: ['"Apple Color Emoji"', '"Segoe UI Emoji"', '"Noto Color Emoji"', '"Twemoji Mozilla"', 'sans-serif'],
        mono: ['ui-monospace', '"SFMono-Regular"', '"Cascadia Code"', '"Noto Sans Mono CJK SC"', 'monospace'],
      },
      borderRadius: {
        bubble: '1rem',
        card: '0.875rem',
      },
      boxShadow: {
        card: '0 10px 30px -8px rgb(15 20 35 / 0.25), 0 2px 6px rgb(15 20 35 / 0.08)',
        float: '0 4px 14px rgb(15 20 35 / 0.18)',
      },
      transitionDuration: {
        fast: '150ms',
        base: '180ms',
      },
      width: {
        sidebar: '300px',
      },
    },
  },
  plugins: [],
}
