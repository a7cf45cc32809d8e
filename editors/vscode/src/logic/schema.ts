//! The debugger's attribute schema, as `package.json` contributes it
//! (`contributes.debuggers[].configurationAttributes`) and as `ax-dap --schema`
//! prints it: validating a debug configuration against it, and projecting it
//! onto what the adapter's parsing depends on (names, types, required,
//! defaults) to compare the two. Free of `vscode` imports.

/** A JSON-Schema property as VS Code's debugger contributions use it. */
export interface Property {
  type?: string | string[];
  description?: string;
  default?: unknown;
  items?: Property;
  properties?: Record<string, Property>;
  required?: string[];
  additionalProperties?: Property | boolean;
}

/** One request's attributes (`launch` or `attach`). */
export interface RequestSchema {
  required?: string[];
  properties: Record<string, Property>;
}

/** `configurationAttributes`: one schema per request. */
export type Attributes = Record<string, RequestSchema>;

/** The JSON type of a value, in JSON-Schema's words. */
export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(expected: string | string[] | undefined, value: unknown): boolean {
  if (expected === undefined) return true;
  const actual = jsonType(value);
  const types = Array.isArray(expected) ? expected : [expected];
  return types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
}

function describeType(expected: string | string[]): string {
  const types = Array.isArray(expected) ? expected : [expected];
  return types.map((t) => (t === 'array' || t === 'object' || t === 'integer' ? `an ${t}` : `a ${t}`)).join(' or ');
}

/**
 * The problems of `value` against `property`, each naming the attribute by its
 * path (`calls[1].method`) and what was expected. Unknown attributes are not
 * problems: launch.json may carry VS Code's own (`preLaunchTask`, …).
 */
export function validate(value: unknown, property: Property, at: string): string[] {
  if (value === undefined) return [];
  if (property.type !== undefined && !typeMatches(property.type, value)) {
    const hint = property.description ? ` (${property.description.replace(/\.$/, '')})` : '';
    return [`"${at}" is ${describeValue(value)}; expected ${describeType(property.type)}${hint}`];
  }
  const problems: string[] = [];
  if (Array.isArray(value) && property.items) {
    value.forEach((item, i) => problems.push(...validate(item, property.items as Property, `${at}[${i}]`)));
  } else if (jsonType(value) === 'object') {
    const object = value as Record<string, unknown>;
    for (const name of property.required ?? []) {
      if (object[name] === undefined) problems.push(`"${at}.${name}" is missing`);
    }
    for (const [name, field] of Object.entries(object)) {
      const known = property.properties?.[name];
      if (known) problems.push(...validate(field, known, `${at}.${name}`));
      else if (typeof property.additionalProperties === 'object') {
        problems.push(...validate(field, property.additionalProperties, `${at}.${name}`));
      }
    }
  }
  return problems;
}

function describeValue(value: unknown): string {
  const text = JSON.stringify(value);
  const shown = text !== undefined && text.length <= 40 ? ` ${text}` : '';
  const type = jsonType(value);
  return `${type === 'array' || type === 'object' || type === 'integer' ? 'an' : 'a'} ${type}${shown}`;
}

/** The problems of a whole debug configuration against its request's schema. */
export function validateConfiguration(config: Record<string, unknown>, schema: RequestSchema): string[] {
  const problems: string[] = [];
  for (const name of schema.required ?? []) {
    if (config[name] === undefined) {
      const description = schema.properties[name]?.description;
      problems.push(`"${name}" is missing${description ? ` (${description.replace(/\.$/, '')})` : ''}`);
    }
  }
  for (const [name, property] of Object.entries(schema.properties)) {
    problems.push(...validate(config[name], property, name));
  }
  return problems;
}

/**
 * What the adapter's parsing depends on, and so what must not drift between
 * `package.json` and `ax-dap --schema`: for each request, the required names,
 * and for each property (recursively) its type, default, required names, item
 * and value schemas. Descriptions are left out: they are prose.
 */
export function project(attributes: Attributes): unknown {
  const property = (p: Property): unknown => ({
    type: p.type ?? null,
    default: p.default ?? null,
    required: [...(p.required ?? [])].sort(),
    items: p.items ? property(p.items) : null,
    properties: p.properties ? properties(p.properties) : null,
    additionalProperties:
      typeof p.additionalProperties === 'object' ? property(p.additionalProperties) : (p.additionalProperties ?? null),
  });
  const properties = (ps: Record<string, Property>): unknown =>
    Object.fromEntries(Object.keys(ps).sort().map((name) => [name, property(ps[name])]));
  return Object.fromEntries(
    Object.keys(attributes)
      .sort()
      .map((request) => [
        request,
        { required: [...(attributes[request].required ?? [])].sort(), properties: properties(attributes[request].properties) },
      ]),
  );
}

/** Each difference between two projections, as `path: a ≠ b` lines (empty when they agree). */
export function differences(a: unknown, b: unknown, at = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (jsonType(a) === 'object' && jsonType(b) === 'object') {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    const names = [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort();
    return names.flatMap((name) => differences(ao[name], bo[name], at ? `${at}.${name}` : name));
  }
  return [`${at || '(root)'}: ${JSON.stringify(a) ?? 'absent'} ≠ ${JSON.stringify(b) ?? 'absent'}`];
}
