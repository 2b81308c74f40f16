/** The committed src/schema.d.ts is exactly what openapi-typescript makes of the served /openapi.json. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { fetchOpenApi, schemaTypes } from "./support/schema.js";
import { PACKAGE_ROOT, startServer } from "./support/server.js";

test("src/schema.d.ts matches the running server's GET /openapi.json (else: npm run schema)", async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const { contentType, document } = await fetchOpenApi(server.url);
  assert.match(contentType, /^application\/json/);
  assert.match(String(document.openapi), /^3\.1\./);
  const served = await schemaTypes(document);
  const committed = readFileSync(join(PACKAGE_ROOT, "src", "schema.d.ts"), "utf8");
  if (served !== committed) {
    const a = served.split("\n");
    const b = committed.split("\n");
    let line = 0;
    while (line < a.length && a[line] === b[line]) line++;
    assert.fail(
      `src/schema.d.ts is stale: first difference at line ${line + 1}\n` +
        `  served:    ${a[line] ?? "(end)"}\n  committed: ${b[line] ?? "(end)"}\n` +
        "regenerate it with `npm run schema` and commit it",
    );
  }
});
