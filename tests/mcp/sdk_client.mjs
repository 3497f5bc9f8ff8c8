// tests/mcp/sdk_client.mjs: the official TypeScript SDK client (@modelcontextprotocol/sdk)
// driving `m1 serve --conformance` over stdio or Streamable HTTP. Every check compares against
// the fixture texts; the first mismatch exits 1 with a message naming the check.
// Usage: node sdk_client.mjs <tools_dir> stdio <server command> [args...]
//        node sdk_client.mjs <tools_dir> http <url>
import path from "node:path";

const [toolsDir, mode, target, ...targetArgs] = process.argv.slice(2);
const sdk = (p) => import(path.join(toolsDir, "mcp/node_modules/@modelcontextprotocol/sdk/dist/esm", p));
const { Client } = await sdk("client/index.js");
const { StdioClientTransport } = await sdk("client/stdio.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { CreateMessageRequestSchema, ElicitRequestSchema } = await sdk("types.js");

function check(cond, what, got) {
  if (!cond) {
    console.error(`FAIL ${what}: ${JSON.stringify(got)}`);
    process.exit(1);
  }
  console.log(`ok   ${what}`);
}

const client = new Client({ name: "ts-sdk-interop", version: "1.0.0" },
                          { capabilities: { sampling: {}, elicitation: {} } });
let sampled = null;
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  sampled = req.params;
  return { role: "assistant", content: { type: "text", text: "pong from ts" }, model: "ts", stopReason: "endTurn" };
});
client.setRequestHandler(ElicitRequestSchema, async (req) => ({
  action: "accept", content: { username: "ada", email: "ada@example.org" } }));

const transport = mode === "stdio"
  ? new StdioClientTransport({ command: target, args: targetArgs, stderr: "inherit" })
  : new StreamableHTTPClientTransport(new URL(target));
await client.connect(transport);
check(client.getServerVersion()?.name === "m1", "serverInfo.name is m1", client.getServerVersion());
check(!!client.getServerCapabilities()?.tools, "tools capability", client.getServerCapabilities());

const tools = await client.listTools();
const names = tools.tools.map((t) => t.name);
for (const n of ["test_simple_text", "test_sampling", "test_elicitation", "json_schema_2020_12_tool"])
  check(names.includes(n), `tools/list has ${n}`, names);
const js = tools.tools.find((t) => t.name === "json_schema_2020_12_tool");
check(js.inputSchema.$defs?.address && js.inputSchema.additionalProperties === false, "2020-12 schema kept", js);

let r = await client.callTool({ name: "test_simple_text", arguments: {} });
check(r.content[0].text === "This is a simple text response for testing.", "tools/call text", r);

r = await client.callTool({ name: "test_error_handling", arguments: {} });
check(r.isError === true, "isError result", r);

const progress = [];
r = await client.callTool({ name: "test_tool_with_progress", arguments: {} }, undefined,
                          { onprogress: (p) => progress.push(p.progress) });
// The SDK dispatches notifications in a microtask but responses synchronously, so a final
// progress notification read in the same chunk as the response is dropped by the client.
check(progress[0] === 0 && progress[1] === 50 && progress.length <= 3 && (progress[2] ?? 100) === 100,
      "progress 0/50(/100)", progress);

const logs = [];
const { LoggingMessageNotificationSchema } = await sdk("types.js");
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params.data));
await client.setLoggingLevel("info");
await client.callTool({ name: "test_tool_with_logging", arguments: {} });
await new Promise((res) => setTimeout(res, 100));
check(logs.length === 3 && logs[0] === "Tool execution started", "3 log notifications", logs);

r = await client.callTool({ name: "test_sampling", arguments: { prompt: "ping?" } });
check(r.content[0].text === "LLM response: pong from ts", "sampling round trip", r);
check(sampled?.messages?.[0]?.content?.text === "ping?", "sampling request params", sampled);

r = await client.callTool({ name: "test_elicitation", arguments: { message: "who?" } });
check(r.content[0].text.includes('"username":"ada"') && r.content[0].text.includes("accept"),
      "elicitation round trip", r);

let threw = null;
try { await client.callTool({ name: "no_such_tool", arguments: {} }); } catch (e) { threw = e; }
check(threw && /Unknown tool/.test(threw.message), "unknown tool is a protocol error", String(threw));

const res = await client.listResources();
check(res.resources.some((x) => x.uri === "test://static-text"), "resources/list", res);
const rd = await client.readResource({ uri: "test://template/42/data" });
check(JSON.parse(rd.contents[0].text).id === "42", "resource template read", rd);
const bin = await client.readResource({ uri: "test://static-binary" });
check(typeof bin.contents[0].blob === "string" && bin.contents[0].mimeType === "image/png", "binary resource", bin);
threw = null;
try { await client.readResource({ uri: "test://nope" }); } catch (e) { threw = e; }
check(threw && threw.code === -32002, "unknown resource is -32002", String(threw));

const pr = await client.getPrompt({ name: "test_prompt_with_arguments", arguments: { arg1: "a", arg2: "b" } });
check(pr.messages[0].content.text === "Prompt with arguments: arg1='a', arg2='b'", "prompts/get", pr);
const comp = await client.complete({ ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
                                     argument: { name: "arg1", value: "pa" } });
check(JSON.stringify(comp.completion.values) === '["paris","park","party"]', "completion/complete", comp);
await client.ping();
console.log("ok   ping");
await client.close();
console.log("PASS");
process.exit(0);
