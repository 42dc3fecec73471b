// Validates Kubernetes objects against the Kubernetes API's own schemas, for
// tests/deploy/test_chart.py. It runs from a directory where `npm ci` installed this folder's
// package.json (kubernetes-models: the Kubernetes 1.3x OpenAPI as ajv validators and
// TypeScript types; @kubernetes-models/prometheus-operator: the ServiceMonitor CRD; TypeScript).
//
//   node validate_manifests.js OBJECTS.json
//
// OBJECTS.json: [{"source": "...", "object": {...}}, ...]. Each object is checked twice:
//   1. the model's validate() (ajv over the OpenAPI schema): required fields, types, formats
//      such as int32, enums;
//   2. TypeScript, with the object as a literal of the model's interface: the OpenAPI schemas
//      do not forbid unknown fields, but TypeScript's excess-property check does, so a
//      misspelt or misplaced field (readinesProbe, a probe one level too deep) is an error.
// An apiVersion/kind without a model is an error too. Prints one line per problem; exit
// status 0 when every object is valid, 1 otherwise.
"use strict";

const fs = require("fs");
const path = require("path");
const ts = require("typescript");

// Where models of API groups outside kubernetes-models live.
const MODEL_PACKAGES = {
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

function modelModule(apiVersion, kind) {
  return `${MODEL_PACKAGES[apiVersion] || `kubernetes-models/${apiVersion}`}/${kind}`;
}

function main() {
  if (process.argv.length !== 3) {
    console.error("usage: node validate_manifests.js OBJECTS.json");
    process.exit(2);
  }
  const items = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const problems = [];
  const imports = [];
  const literals = [];  // [index into items, TypeScript line]
  items.forEach(({ source, object }, i) => {
    const label = `${source}: ${object.kind} ${object.metadata && object.metadata.name}`;
    const module = modelModule(object.apiVersion, object.kind);
    let Model;
    try {
      Model = require(module)[object.kind];
    } catch (e) {
      Model = undefined;
    }
    if (typeof Model !== "function") {
      problems.push(`${label}: no schema for ${object.apiVersion} ${object.kind}`);
      return;
    }
    try {
      new Model(object).validate();
    } catch (e) {
      problems.push(`${label}: ${e.message}`);
    }
    imports.push(`import type { I${object.kind} as T${i} } from ${JSON.stringify(module)};`);
    literals.push([i, `export const o${i}: T${i} = ${JSON.stringify(object)};`]);
  });

  // One object per line after the imports: a diagnostic's line names its object.
  const file = path.join(__dirname, "manifests.ts");
  fs.writeFileSync(file, [...imports, ...literals.map(([, line]) => line)].join("\n") + "\n");
  const program = ts.createProgram([file], {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2020,
  });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
    const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const literal = literals[line - imports.length];
    if (literal === undefined) {
      problems.push(`manifests.ts:${line + 1}: ${message}`);
      continue;
    }
    const { source, object } = items[literal[0]];
    problems.push(`${source}: ${object.kind} ${object.metadata.name}: ${message}`);
  }

  for (const p of problems) console.log(p);
  console.error(`${items.length} objects, ${problems.length} problems`);
  process.exit(problems.length === 0 ? 0 : 1);
}

main();
