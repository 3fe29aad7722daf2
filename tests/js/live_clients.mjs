// Real JavaScript clients of Switchboard's live events over plain HTTP, driven by
// tests/test_live_clients.py: graphql-sse (distinct or single connection mode) and Apollo
// Client's HttpLink (multipart subscriptions). One subscription; each result is printed
// as a JSON line ({"next": …}, {"error": …}, {"complete": true}), and the process exits
// after `count` results or at the end of the subscription.
//
//   node live_clients.mjs <sse-distinct|sse-single|apollo> <base url> <token> <file.graphql> <variables JSON> <count>
import { readFileSync } from "node:fs";

const [mode, base, token, file, variablesJson, countText] = process.argv.slice(2);
const query = readFileSync(file, "utf8");
const variables = JSON.parse(variablesJson);
const count = Number(countText);
let seen = 0;

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function finish(code = 0) {
  process.stdout.write("", () => process.exit(code));
}

const sink = {
  next(result) {
    print({ next: result });
    seen += 1;
    if (seen >= count) finish(0);
  },
  error(error) {
    print({ error: String(error && error.message ? error.message : error) });
    finish(1);
  },
  complete() {
    print({ complete: true });
    finish(0);
  },
};

if (mode === "sse-distinct" || mode === "sse-single") {
  const { createClient } = await import("graphql-sse");
  const client = createClient({
    url: `${base}/graphql/stream`,
    headers: { authorization: `Bearer ${token}` },
    singleConnection: mode === "sse-single",
    retryAttempts: 0,
  });
  client.subscribe({ query, variables }, sink);
} else if (mode === "apollo") {
  const { ApolloClient, HttpLink, InMemoryCache, gql } = await import("@apollo/client");
  const client = new ApolloClient({
    link: new HttpLink({
      uri: `${base}/graphql`,
      headers: { authorization: `Bearer ${token}` },
    }),
    cache: new InMemoryCache(),
  });
  client
    .subscribe({ query: gql(query), variables, fetchPolicy: "no-cache" })
    .subscribe({
      next: (result) => sink.next(result.error ? { errors: [String(result.error)] } : { data: result.data }),
      error: sink.error,
      complete: sink.complete,
    });
} else {
  print({ error: `unknown mode ${mode}` });
  finish(2);
}
