/** Greenlight's version, kept in one place: `[workspace.package] version` in the root Cargo.toml. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const CARGO_MANIFEST = path.resolve(__dirname, '..', '..', 'Cargo.toml');

/** Reads `version` from the `[workspace.package]` table of the workspace manifest. */
export function workspaceVersion(manifest: string = CARGO_MANIFEST): string {
  const text = fs.readFileSync(manifest, 'utf8');
  const table = /^\[workspace\.package\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(text);
  const version = table && /^version\s*=\s*"([^"]+)"/m.exec(table[1]);
  if (!version) throw new Error(`${manifest}: no version in [workspace.package]`);
  return version[1];
}
