/**
 * `npm run schema`: starts the release binary (as the tests do), reads its GET /openapi.json and
 * writes src/schema.d.ts with openapi-typescript. Commit the result; test/schema.test.ts fails
 * while it differs from what the server serves.
 */

import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { fetchOpenApi, schemaTypes } from "../test/support/schema.js";
import { PACKAGE_ROOT, startServer } from "../test/support/server.js";

const server = await startServer();
try {
  const { document } = await fetchOpenApi(server.url);
  const path = join(PACKAGE_ROOT, "src", "schema.d.ts");
  writeFileSync(path, await schemaTypes(document));
  console.log(`wrote ${path}`);
} finally {
  await server.stop();
}
