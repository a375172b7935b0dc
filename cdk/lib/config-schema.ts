/**
 * Greenlight configurations checked at synthesis against the functions' JSON Schema
 * (`docs/greenlight.schema.json`, generated from the Rust types), with messages that name the
 * field: `checks.web.timout: unknown key "timout" (did you mean "timeout"?)`.
 *
 * The schema describes a complete document. The functions check a little more (URL schemes,
 * duration limits, `within` against `interval`, placeholders): what passes here can still be
 * refused by the function, with its own message, but a typo or a wrong type cannot reach an
 * account.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';

/** The schema the functions' configuration follows: `docs/` at the repository root. */
export const CONFIG_SCHEMA_PATH = path.resolve(__dirname, '..', '..', 'docs', 'greenlight.schema.json');

/** The functions, by the names used in configuration files and parameters. */
export const FUNCTION_NAMES = ['before-install', 'after-install', 'before-allow-traffic', 'after-allow-traffic'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

type Json = unknown;
type Schema = Record<string, any>;

export interface ValidateOptions {
  /**
   * A patch merged over the function's own configuration at run time (an ECS hook's
   * `hookDetails.greenlight`): a check may leave out its `type` (it overrides a check the
   * function defines), its keys are then only checked to exist in some check type, and a
   * `null` (which removes a key) is accepted anywhere. @default false
   */
  readonly partial?: boolean;
}

const validators = new Map<string, ValidateFunction>();

function loadSchema(): Schema {
  return JSON.parse(fs.readFileSync(CONFIG_SCHEMA_PATH, 'utf8')) as Schema;
}

function compile(partial: boolean): ValidateFunction {
  const key = partial ? 'partial' : 'full';
  const cached = validators.get(key);
  if (cached) return cached;
  const schema = loadSchema();
  const defs = schema.$defs as Record<string, Schema>;
  // Each check and each notification channel is one of several objects told apart by `type`:
  // with a discriminator, a mistake inside one is reported against that type only.
  for (const name of ['Check', 'NotificationChannel']) {
    if (defs[name]?.oneOf) defs[name] = { ...defs[name], type: 'object', discriminator: { propertyName: 'type' }, required: ['type'] };
  }
  if (partial) {
    // A check without `type` overrides one the function defines: any key of any check type.
    const union: Record<string, Schema> = {};
    for (const branch of defs.Check.oneOf as Schema[]) {
      for (const [k, v] of Object.entries(branch.properties as Record<string, Schema>)) {
        if (k === 'type') continue;
        union[k] = k in union && JSON.stringify(union[k]) !== JSON.stringify(v) ? {} : v;
      }
    }
    defs.CheckPatch = {
      if: { type: 'object', required: ['type'] },
      then: { $ref: '#/$defs/Check' },
      else: { type: 'object', additionalProperties: false, properties: union },
    };
    replaceRefs(schema, '#/$defs/Check', '#/$defs/CheckPatch');
  }
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: false, discriminator: true });
  const int = (min: number, max: number) => ({
    type: 'number' as const,
    validate: (n: number) => Number.isInteger(n) && n >= min && n <= max,
  });
  ajv.addFormat('uint', int(0, Number.MAX_SAFE_INTEGER));
  ajv.addFormat('uint16', int(0, 65535));
  ajv.addFormat('uint32', int(0, 4294967295));
  ajv.addFormat('uint64', int(0, Number.MAX_SAFE_INTEGER));
  ajv.addFormat('int32', int(-2147483648, 2147483647));
  ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });
  const validate = ajv.compile(schema);
  validators.set(key, validate);
  return validate;
}

function replaceRefs(node: unknown, from: string, to: string): void {
  if (Array.isArray(node)) {
    node.forEach((n) => replaceRefs(n, from, to));
  } else if (typeof node === 'object' && node !== null) {
    const o = node as Record<string, unknown>;
    if (o.$ref === from) o.$ref = to;
    for (const [k, v] of Object.entries(o)) {
      // The CheckPatch definition itself still refers to the full check.
      if (k === 'CheckPatch') continue;
      replaceRefs(v, from, to);
    }
  }
}

/** Drops `null` values (keys a patch removes) before a partial document is checked. */
function withoutNulls(v: Json): Json {
  if (Array.isArray(v)) return v;
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = withoutNulls(x);
    return out;
  }
  return v;
}

/**
 * What is wrong with a configuration, one message per mistake, each starting with the
 * field's path (`checks.web.timeout`); empty when it is valid.
 */
export function configErrors(doc: Json, options: ValidateOptions = {}): string[] {
  const partial = options.partial ?? false;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return ['(root): a configuration is a JSON object'];
  }
  const validate = compile(partial);
  const value = partial ? withoutNulls(doc) : doc;
  if (validate(value)) return [];
  return render(validate.errors ?? [], value);
}

/** Throws an error listing every mistake, each prefixed with `where`, unless the configuration is valid. */
export function validateConfig(doc: Json, where: string, options: ValidateOptions = {}): void {
  const errors = configErrors(doc, options);
  if (errors.length > 0) {
    throw new Error(
      `invalid Greenlight configuration in ${where} (docs/configuration.md):\n${errors.map((e) => `  ${where}: ${e}`).join('\n')}`,
    );
  }
}

function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '(root)' : parts.join('.');
}

function valueAt(doc: Json, instancePath: string): Json {
  let v: any = doc;
  for (const p of instancePath.split('/').slice(1)) {
    v = v?.[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return v;
}

const quote = (v: unknown) => JSON.stringify(v);

/** The closest of `known` to `key`, if it is close enough to be a typo. */
export function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

/** The constants a `oneOf` of constants (or an `enum`) allows, or undefined. */
function constants(schema: Schema | undefined): unknown[] | undefined {
  if (!schema) return undefined;
  if (Array.isArray(schema.enum)) return schema.enum;
  const branches = (schema.oneOf ?? schema.anyOf) as Schema[] | undefined;
  if (!branches || !branches.every((b) => 'const' in b || Array.isArray(b.enum))) return undefined;
  return branches.flatMap((b) => ('const' in b ? [b.const] : b.enum));
}

function render(errors: ErrorObject[], doc: Json): string[] {
  // A oneOf/anyOf whose branches are constants reads as one "expected one of" message; its
  // branches' own errors are dropped. A oneOf/anyOf of structures keeps the errors of the
  // branch that got furthest.
  const dropped = new Set<ErrorObject>();
  const messages: string[] = [];
  const alternatives = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf');
  for (const alt of alternatives) {
    const inside = errors.filter((e) => e !== alt && e.schemaPath.startsWith(`${alt.schemaPath}/`));
    const allowed = constants(alt.parentSchema as Schema);
    if (allowed) {
      inside.forEach((e) => dropped.add(e));
      continue;
    }
    if (inside.length === 0) continue;
    // Group by branch: schemaPath `<alt>/<n>/...`.
    const byBranch = new Map<string, ErrorObject[]>();
    for (const e of inside) {
      const branch = e.schemaPath.slice(alt.schemaPath.length + 1).split('/')[0];
      byBranch.set(branch, [...(byBranch.get(branch) ?? []), e]);
    }
    const score = (es: ErrorObject[]) =>
      Math.max(...es.map((e) => e.instancePath.split('/').length + (e.keyword === 'type' ? 0 : 0.5)));
    const best = [...byBranch.values()].sort((a, b) => score(b) - score(a) || a.length - b.length)[0];
    inside.filter((e) => !best.includes(e)).forEach((e) => dropped.add(e));
    dropped.add(alt);
  }
  // A missing `type` is said once, by the discriminator; a number out of range once, by its bound.
  const discriminated = new Set(errors.filter((e) => e.keyword === 'discriminator').map((e) => e.instancePath));
  const bounded = new Set(errors.filter((e) => e.keyword === 'minimum' || e.keyword === 'maximum').map((e) => e.instancePath));
  for (const e of errors) {
    if (dropped.has(e) || e.keyword === 'if') continue;
    if (e.keyword === 'required' && discriminated.has(e.instancePath)) continue;
    if (e.keyword === 'format' && bounded.has(e.instancePath)) continue;
    messages.push(message(e, doc));
  }
  return [...new Set(messages)];
}

function message(e: ErrorObject, doc: Json): string {
  const parent = e.parentSchema as Schema | undefined;
  const at = fieldPath(e.instancePath);
  const value = valueAt(doc, e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((parent?.properties as Record<string, unknown>) ?? {});
      const guess = closest(key, known);
      return `${fieldPath(e.instancePath, key)}: unknown key ${quote(key)}${
        guess ? ` (did you mean ${quote(guess)}?)` : known.length > 0 ? `; expected one of: ${known.join(', ')}` : ''
      }`;
    }
    case 'discriminator': {
      const params = e.params as { error: string; tag: string; tagValue?: unknown };
      const kinds = ((parent?.oneOf as Schema[]) ?? []).map((b) => b.properties?.type?.const).filter(Boolean) as string[];
      if (params.error === 'mapping') {
        const guess = typeof params.tagValue === 'string' ? closest(params.tagValue, kinds) : undefined;
        return `${fieldPath(e.instancePath, 'type')}: unknown type ${quote(params.tagValue)}${
          guess ? ` (did you mean ${quote(guess)}?)` : ''
        }; expected one of: ${kinds.join(', ')}`;
      }
      return `${at}: "type" is required (one of: ${kinds.join(', ')})`;
    }
    case 'oneOf':
    case 'anyOf': {
      const allowed = constants(parent);
      if (allowed) return `${at}: ${quote(value)} is not allowed; expected one of: ${allowed.map((a) => quote(a)).join(', ')}`;
      return `${at}: ${quote(value)} matches none of the forms this field takes`;
    }
    case 'enum':
      return `${at}: ${quote(value)} is not allowed; expected one of: ${(e.params as { allowedValues: unknown[] }).allowedValues
        .map((a) => quote(a))
        .join(', ')}`;
    case 'const':
      return `${at}: expected ${quote((e.params as { allowedValue: unknown }).allowedValue)}, found ${quote(value)}`;
    case 'type':
      return `${at}: expected ${[(e.params as { type: string | string[] }).type].flat().join(' or ')}, found ${describe(value)}`;
    case 'required':
      return `${fieldPath(e.instancePath, (e.params as { missingProperty: string }).missingProperty)}: required`;
    case 'pattern':
      if (e.schemaPath.includes('Duration') || parent?.description?.startsWith('A duration')) {
        return `${at}: invalid duration ${quote(value)}; expected a number with a unit (ms, s, m, h), e.g. "30s", "5m", "1h 30m"`;
      }
      return `${at}: ${quote(value)} does not match ${(e.params as { pattern: string }).pattern}`;
    case 'format':
      return `${at}: ${quote(value)} is not a valid ${(e.params as { format: string }).format}`;
    default:
      return `${at}: ${e.message ?? e.keyword}`;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${quote(v)}`;
}

/** JSON Merge Patch (RFC 7386): `patch` applied to `target`. */
export function mergePatch(target: Json, patch: Json): Json {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, Json> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** A configuration file: one configuration per function, and `all`, merged under each. */
export type GreenlightConfigFile = { readonly [name: string]: { readonly [key: string]: unknown } };

/**
 * Each function's configuration from a configuration file: `all` with the function's own
 * entry merged over it (JSON Merge Patch), validated. Functions with neither are left out.
 */
export function resolveConfigFile(file: Json, where = 'config'): Partial<Record<FunctionName, Record<string, unknown>>> {
  if (typeof file !== 'object' || file === null || Array.isArray(file)) {
    throw new Error(`${where}: expected a JSON object whose keys are function names (${FUNCTION_NAMES.join(', ')}) or "all"`);
  }
  const known = [...FUNCTION_NAMES, 'all'];
  const problems: string[] = [];
  for (const [key, value] of Object.entries(file)) {
    if (!known.includes(key)) {
      const guess = closest(key, known);
      problems.push(`${key}: unknown function${guess ? ` (did you mean ${quote(guess)}?)` : ''}; expected one of: ${known.join(', ')}`);
    } else if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push(`${key}: a configuration is a JSON object`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`invalid Greenlight configuration file ${where}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  const f = file as Record<string, Json>;
  const out: Partial<Record<FunctionName, Record<string, unknown>>> = {};
  for (const name of FUNCTION_NAMES) {
    if (f.all === undefined && f[name] === undefined) continue;
    const merged = mergePatch(mergePatch({}, f.all ?? {}), f[name] ?? {}) as Record<string, unknown>;
    problems.push(...configErrors(merged).map((e) => `${name}: ${e}`));
    out[name] = merged;
  }
  if (problems.length > 0) {
    throw new Error(`invalid Greenlight configuration in ${where} (docs/configuration.md):\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  return out;
}
