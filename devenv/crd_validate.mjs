// Validates Kubernetes custom resources (Argo CD, Flux) with the validators that the npm packages
// @kubernetes-models/argo-cd and @kubernetes-models/flux-cd generate from the projects' Go API types.
//
// stdin: a JSON list of {"module": "<package>/<group>/<version>/<Kind>", "document": {...}}.
// stdout: a JSON list, one entry per input, of errors {"path": [...], "message": "..."}.
//
// Those validators have no additionalProperties; the API server prunes (or, with strict field
// validation, rejects) fields its schema does not declare. To catch misspelt fields, each document
// is wrapped in a Proxy that records which properties the validator reads: a key of an object whose
// declared properties the validator looked up, that it never read and never enumerated (maps are
// enumerated), is not in the schema. Free-form objects (no declared properties) are never read into.
// The generated code leaves out properties whose schema checks nothing (plain `description`
// strings), so a key that the package's type declarations (*.d.ts) declare somewhere is accepted:
// what is reported is a name the API does not have at all, such as a misspelling.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const NODE_MODULES = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
const DECLARED = /^\s+"([^"]+)"\??:/gm;
const vocabularies = new Map();

function declaredNames(packageName) {
  if (!vocabularies.has(packageName)) {
    const names = new Set();
    const walk = (dir) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory() && entry.name !== "node_modules") walk(path);
        else if (entry.name.endsWith(".d.ts")) for (const match of readFileSync(path, "utf8").matchAll(DECLARED)) names.add(match[1]);
      }
    };
    walk(join(NODE_MODULES, ...packageName.split("/")));
    walk(join(NODE_MODULES, "@kubernetes-models", "apimachinery"));
    vocabularies.set(packageName, names);
  }
  return vocabularies.get(packageName);
}

function watched(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const record = { path, value, read: new Set(), enumerated: false };
  seen.push(record);
  const children = Array.isArray(value) ? [] : {};
  for (const [key, child] of Object.entries(value)) children[key] = watched(child, [...path, key], seen);
  return new Proxy(children, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(seen, declared) {
  const errors = [];
  for (const { path, value, read, enumerated } of seen) {
    if (Array.isArray(value) || enumerated) continue;
    const keys = Object.keys(value);
    // Reading only "length"/toJSON-like probes does not declare properties.
    if (![...read].some((key) => keys.includes(key) || !["length", "then", "toJSON"].includes(key))) continue;
    for (const key of keys) {
      if (!read.has(key) && !declared.has(key)) errors.push({ path, message: `Additional properties are not allowed ('${key}' was unexpected)` });
    }
  }
  return errors;
}

async function errorsOf({ module, document }) {
  const exports = await import(module);
  const kind = module.split("/").pop();
  const Model = exports[kind];
  if (typeof Model?.prototype?.validate !== "function") throw new Error(`${module} exports no model ${kind}`);
  const seen = [];
  // The model's validate() runs the generated function on `this`: given the document itself (not
  // a model instance, whose constructor would set apiVersion and kind), it checks what was written.
  try {
    Model.prototype.validate.call(watched(document, [], seen));
  } catch (error) {
    if (!Array.isArray(error.errors)) throw error;
    return error.errors.map((detail) => ({
      path: detail.instancePath.split("/").slice(1).map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~")),
      message: detail.message ?? `${detail.keyword} ${JSON.stringify(detail.params)}`,
    }));
  }
  return unknownFields(seen, declaredNames(module.split("/").slice(0, 2).join("/")));
}

const items = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const item of items) results.push(await errorsOf(item));
process.stdout.write(JSON.stringify(results));
