// Node.js versions: the one place they are decided is `engines.node` in
// package.json. Run by scripts/setup.sh before any npm command:
//
//   node scripts/check-node.mjs          this Node is one package.json accepts
//   node scripts/check-node.mjs --deps   also: every locked npm package accepts
//                                        every version package.json accepts
//                                        (so `npm ci` never warns EBADENGINE)
//
// The first check runs before node_modules exists, so it reads the simple
// ranges package.json uses (`^x.y.z` and `>=x.y.z` joined by `||`) itself;
// the second uses npm's own semver from node_modules.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const wanted = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines.node

const parse = (v) => v.replace(/^v/, '').split('.').map(Number)
const atLeast = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
function accepts(range, version) {
  const v = parse(version)
  return range.split('||').some((alt) => {
    const m = alt.trim().match(/^(\^|>=)(\d+\.\d+\.\d+)$/)
    if (!m) throw new Error(`check-node: cannot read the range "${alt.trim()}" in package.json engines.node`)
    const min = parse(m[2])
    return atLeast(v, min) >= 0 && (m[1] === '>=' || v[0] === min[0])
  })
}

if (!accepts(wanted, process.version)) {
  console.error(
    `Node.js ${process.version} is not supported: Courier needs ${wanted} (package.json "engines").\n` +
      'Install one of those (https://nodejs.org, or `nvm install 22`) and run this again.',
  )
  process.exit(1)
}

if (process.argv.includes('--deps')) {
  const semver = createRequire(join(root, 'package.json'))('semver')
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const narrower = Object.entries(lock.packages)
    .filter(([path, p]) => path && p.engines?.node && !semver.subset(wanted, p.engines.node))
    .map(([path, p]) => `  ${path.replace(/^.*node_modules\//, '')}@${p.version} needs ${p.engines.node}`)
  if (narrower.length) {
    console.error(`Locked npm packages that do not accept every Node package.json allows (${wanted}):`)
    console.error(narrower.join('\n'))
    console.error('Pin versions that do, or narrow "engines" in package.json (and the README).')
    process.exit(1)
  }
}
