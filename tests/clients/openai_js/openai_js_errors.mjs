// An app on the openai npm package (7.55.0), run by tests/clients/test_openai_stream_errors.py: a
// stream the upstream cuts midway, then the next request on the same client.
//
//   node openai_js_errors.mjs
//
// Environment as for openai_js.mjs (OPENAI_BASE_URL, OPENAI_API_KEY, PARLEY_JS_MODULES). Prints one
// line `RESULT {json}`: the pieces read before the error, the error the SDK raised (its class,
// status and message), and the next answer.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.PARLEY_JS_MODULES, "package.json"));
const { default: OpenAI, APIError } = require("openai");

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY,
                            maxRetries: 0 });
const HELLO = [{ role: "user", content: "hello from node" }];

const pieces = [];
let error = null;
try {
  const stream = await client.chat.completions.create({ model: "llm", messages: HELLO, stream: true });
  for await (const chunk of stream) {
    if (chunk.choices.length && chunk.choices[0].delta.content) pieces.push(chunk.choices[0].delta.content);
  }
} catch (err) {
  error = { name: err.constructor.name, isAPIError: err instanceof APIError, status: err.status ?? null,
            message: String(err.message) };
}
const next = await client.chat.completions.create({ model: "llm", messages: HELLO });
console.log(`RESULT ${JSON.stringify({ pieces, error, next: next.choices[0].message.content })}`);
