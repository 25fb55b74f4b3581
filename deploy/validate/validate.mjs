#!/usr/bin/env node
// Validates Kubernetes objects against the Kubernetes OpenAPI schemas, offline.
//
//   kubectl kustomize deploy/k8s/overlays/dev | node deploy/validate/validate.mjs
//   node deploy/validate/validate.mjs a.yaml b.yaml
//
// The schemas are those the npm packages in package.json carry, compiled to ajv validators:
// kubernetes-models (the built-in API groups of Kubernetes 1.34) and
// @kubernetes-models/prometheus-operator (the monitoring.coreos.com CRDs: ServiceMonitor...).
// They check types, required fields, enums and formats. Like the API server's OpenAPI schema
// they allow unknown fields, so a typo in an optional field's name ("livenesProbe") would
// pass: field names are therefore also checked against every property name that the
// packages' type declarations (*.d.ts) declare anywhere, skipping the contents of map- or
// any-typed properties (labels, data, resources, ...). That catches misspelt names, not a
// real name in the wrong place; the API server's strict field validation catches the rest.
//
// An object whose apiVersion/kind neither package knows is an error, not a pass. The packages
// still carry some API versions that the API server no longer serves, so those removed up to
// Kubernetes 1.27 (deploy/README.md's minimum) are refused by name (REMOVED_APIS).
//
// Prints one line per invalid object ("INVALID kind/name (apiVersion, file#document): ...")
// and one summary per input ("file: V/N objects valid (kind count, ...)"); exits 0 if every
// object is valid, 1 if any is not, 2 if an input cannot be read or parsed.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

// Where the model class of apiVersion `group/version` (group "" is the core group) lives.
const MODEL_MODULES = [
  (group, version, kind) =>
    group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`,
  (group, version, kind) => `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`,
];

// DNS-1123 subdomain: what metadata.name must be for every kind used here (the schema itself
// does not say).
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

// apiVersion (or "apiVersion kind") -> the Kubernetes release that stopped serving it
// (kubernetes.io/docs/reference/using-api/deprecation-guide).
const REMOVED_APIS = new Map([
  ["extensions/v1beta1", "1.22"],
  ["apps/v1beta1", "1.16"],
  ["apps/v1beta2", "1.16"],
  ["networking.k8s.io/v1beta1", "1.22"],
  ["rbac.authorization.k8s.io/v1beta1", "1.22"],
  ["batch/v1beta1", "1.25"],
  ["policy/v1beta1", "1.25"],
  ["autoscaling/v2beta1", "1.25"],
  ["autoscaling/v2beta2", "1.26"],
  ["discovery.k8s.io/v1beta1", "1.25"],
  ["events.k8s.io/v1beta1", "1.25"],
  ["node.k8s.io/v1beta1", "1.25"],
  ["flowcontrol.apiserver.k8s.io/v1beta1", "1.26"],
  ["storage.k8s.io/v1beta1 CSIStorageCapacity", "1.27"],
]);

const modelCache = new Map();

// Every property name the API types declare, and those whose values are maps or untyped
// (their keys are data, not field names). From the packages' *.d.ts files: lines such as
//   "livenessProbe"?: IIoK8sApiCoreV1Probe;      "labels"?: {  [key: string]: string; };
function declaredFieldNames() {
  const here = dirname(fileURLToPath(import.meta.url));
  const roots = ["kubernetes-models", "@kubernetes-models/apimachinery",
                 "@kubernetes-models/prometheus-operator"].map((p) => join(here, "node_modules", p));
  const known = new Set();
  const opaque = new Set();
  const property = /^\s*"([^"]+)"\??:\s*(.*)$/;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== "_schemas" && e.name !== "node_modules") walk(path);
        continue;
      }
      if (!e.name.endsWith(".d.ts")) continue;
      const lines = readFileSync(path, "utf8").split("\n");
      for (let i = 0; i < lines.length; ++i) {
        const m = property.exec(lines[i]);
        if (!m) continue;
        known.add(m[1]);
        const type = m[2].trim();
        const next = (lines[i + 1] ?? "").trim();
        if (/^\{\s*\[key: string\]/.test(type) || (type === "{" && next.startsWith("[key: string]")) ||
            /^(any|unknown|object)\b/.test(type)) {
          opaque.add(m[1]);
        }
      }
    }
  };
  roots.forEach(walk);
  if (known.size < 500) throw new Error(`only ${known.size} field names declared: packages broken?`);
  return { known, opaque };
}

let fieldNames = null;

// Paths of the fields of `value` whose names no API type declares.
function unknownFields(value, path = "") {
  fieldNames ??= declaredFieldNames();
  const found = [];
  if (Array.isArray(value)) {
    value.forEach((v, i) => found.push(...unknownFields(v, `${path}[${i}]`)));
  } else if (value !== null && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      const p = path === "" ? key : `${path}.${key}`;
      if (!fieldNames.known.has(key)) {
        found.push(p);
      } else if (!fieldNames.opaque.has(key)) {
        found.push(...unknownFields(v, p));
      }
    }
  }
  return found;
}

// The model class for apiVersion/kind, or null when no installed package defines it.
async function modelClass(apiVersion, kind) {
  const key = `${apiVersion} ${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  const slash = apiVersion.lastIndexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  let found = null;
  const safe = /^[A-Za-z0-9.-]*$/;  // no path tricks through apiVersion/kind
  if (safe.test(group) && /^[A-Za-z0-9]+$/.test(version) && /^[A-Za-z0-9]+$/.test(kind)) {
    for (const path of MODEL_MODULES) {
      try {
        const mod = await import(path(group, version, kind));
        const cls = mod[kind];
        if (cls && cls.apiVersion === apiVersion && cls.kind === kind) {
          found = cls;
          break;
        }
      } catch (e) {
        if (e.code !== "ERR_MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
      }
    }
  }
  modelCache.set(key, found);
  return found;
}

// Problems of one object, [] if it is valid.
async function problemsOf(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    return ["not an object"];
  }
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    return ["apiVersion and kind must be strings"];
  }
  const problems = [];
  const name = obj.metadata?.name;
  if (typeof name !== "string" || !DNS_SUBDOMAIN.test(name) || name.length > 253) {
    problems.push(`metadata.name ${JSON.stringify(name)} is not a DNS-1123 subdomain`);
  }
  const removedIn = REMOVED_APIS.get(apiVersion) ?? REMOVED_APIS.get(`${apiVersion} ${kind}`);
  if (removedIn !== undefined) {
    problems.push(`apiVersion ${apiVersion} of ${kind} is no longer served since Kubernetes ${removedIn}`);
    return problems;
  }
  const cls = await modelClass(apiVersion, kind);
  if (cls === null) {
    problems.push(`no schema for apiVersion ${apiVersion} kind ${kind} (unknown or removed API)`);
    return problems;
  }
  try {
    new cls(obj).validate();
  } catch (e) {
    if (!e.errors) throw e;  // a bug, not a validation error
    problems.push(e.message);
  }
  for (const path of unknownFields(obj)) problems.push(`unknown field ${path}`);
  return problems;
}

// Every object of the YAML stream `text` (List kinds expanded), with its document index.
function objectsOf(text, source) {
  const objects = [];
  parseAllDocuments(text).forEach((doc, index) => {
    if (doc.errors.length > 0) {
      throw new Error(`${source}: YAML document ${index}: ${doc.errors[0].message}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) return;
    if (typeof value.kind === "string" && value.kind.endsWith("List") && Array.isArray(value.items)) {
      value.items.forEach((item, i) => objects.push({ where: `${source}#${index}.items[${i}]`, obj: item }));
    } else {
      objects.push({ where: `${source}#${index}`, obj: value });
    }
  });
  return objects;
}

async function main(args) {
  const inputs = args.length === 0 ? [["<stdin>", 0]] : args.map((a) => [a, a]);
  let invalidTotal = 0;
  for (const [source, file] of inputs) {
    let objects;
    try {
      objects = objectsOf(readFileSync(file, "utf8"), source);
    } catch (e) {
      console.error(`validate: ${e.message}`);
      return 2;
    }
    if (objects.length === 0) {
      console.error(`validate: ${source}: no objects`);
      return 2;
    }
    const counts = new Map();
    let invalid = 0;
    for (const { where, obj } of objects) {
      const problems = await problemsOf(obj);
      if (problems.length > 0) {
        ++invalid;
        const label = `${obj?.kind}/${obj?.metadata?.name} (${obj?.apiVersion}, ${where})`;
        console.log(`INVALID ${label}: ${problems.join("; ")}`);
      }
      counts.set(obj?.kind, (counts.get(obj?.kind) ?? 0) + 1);
    }
    const summary = [...counts.entries()].sort().map(([k, n]) => `${k} ${n}`).join(", ");
    console.log(`${source}: ${objects.length - invalid}/${objects.length} objects valid (${summary})`);
    invalidTotal += invalid;
  }
  return invalidTotal === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
