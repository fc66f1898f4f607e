// Exit 0 when node_modules holds every dependency of package.json at the
// version package-lock.json pins, else 1 (the caller then runs `npm ci`).
//
//   node client/examples/node/check_install.mjs || npm ci --prefix client/examples/node
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const readJson = (...parts) => JSON.parse(readFileSync(path.join(HERE, ...parts), 'utf8'));

function installMatchesLock() {
  try {
    const lock = readJson('package-lock.json');
    for (const name of Object.keys(readJson('package.json').dependencies ?? {})) {
      const installed = readJson('node_modules', ...name.split('/'), 'package.json');
      if (lock.packages[`node_modules/${name}`]?.version !== installed.version) return false;
    }
    return true;
  } catch {
    return false;
  }
}

process.exit(installMatchesLock() ? 0 : 1);
