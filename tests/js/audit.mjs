// graphql-http's server audit (GraphQL over HTTP conformance) against a running gateway.
//
// Usage: SWITCHBOARD_TOKEN=<jwt> node audit.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON array on stdout: every audit's id, name and status ("ok", or "error" for a
// failed MUST, "warn" for a SHOULD, "notice" for a MAY), with the reason and the response's
// status and body for the ones that failed. The token comes from the environment, not the
// command line, so that it does not show in process listings.
import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);
const token = process.env.SWITCHBOARD_TOKEN;
if (!url || !token) {
  console.error("usage: SWITCHBOARD_TOKEN=<jwt> node audit.mjs <graphql url>");
  process.exit(2);
}

// Every operation needs a bearer token (the contract's Authentication); the audits send none.
function authorizedFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: authorizedFetch });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") {
    entry.reason = result.reason;
    entry.responseStatus = result.response.status;
    entry.responseBody = await result.response.text().catch((error) => `(unreadable: ${error})`);
  }
  report.push(entry);
}
process.stdout.write(JSON.stringify(report) + "\n");
