/**
 * `src/schema.d.ts` is what openapi-typescript makes of the served `GET /openapi.json`, exactly as
 * `npx openapi-typescript http://HOST/openapi.json --empty-objects-unknown` writes it (an object
 * without declared properties, like an event's `detail`, is `Record<string, unknown>` instead of
 * `Record<string, never>`): `npm run schema` writes it, test/schema.test.ts checks it.
 */

import openapiTS, { COMMENT_HEADER, astToString } from "openapi-typescript";

export async function fetchOpenApi(baseUrl: string): Promise<{ contentType: string; document: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/openapi.json`);
  if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
  return {
    contentType: response.headers.get("content-type") ?? "",
    document: (await response.json()) as Record<string, unknown>,
  };
}

export async function schemaTypes(document: Record<string, unknown>): Promise<string> {
  // openapi-typescript reads the document as given, so hand it a copy.
  const nodes = await openapiTS(structuredClone(document) as never, { emptyObjectsUnknown: true });
  return `${COMMENT_HEADER}${astToString(nodes)}`;
}
