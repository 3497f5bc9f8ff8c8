// bench/mcp_load_ts_server.mjs: the reference for bench_mcp_load — the official TypeScript SDK's
// own Streamable HTTP server (McpServer + StreamableHTTPServerTransport, one transport per
// session, as the SDK's examples do) on node:http, exposing the same cheap tool as
// `m1 serve --conformance` (test_simple_text). Binds 127.0.0.1 only; writes its port to a file.
// Usage: node mcp_load_ts_server.mjs <tools_dir> <port_file> [json]   ("json": enableJsonResponse)
import http from "node:http";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";

const [toolsDir, portFile, mode] = process.argv.slice(2);
const sdk = (p) => import(path.join(toolsDir, "mcp/node_modules/@modelcontextprotocol/sdk/dist/esm", p));
const { McpServer } = await sdk("server/mcp.js");
const { StreamableHTTPServerTransport } = await sdk("server/streamableHttp.js");

const transports = new Map();
function newServer() {
  const s = new McpServer({ name: "ts-sdk-bench", version: "1.0.0" });
  s.registerTool("test_simple_text", { description: "Returns a simple text response", inputSchema: {} },
    async () => ({ content: [{ type: "text", text: "This is a simple text response for testing." }] }));
  return s;
}

const server = http.createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  const parsed = body ? JSON.parse(body) : undefined;
  const sid = req.headers["mcp-session-id"];
  let transport = sid ? transports.get(sid) : undefined;
  if (!transport) {
    if (req.method !== "POST" || parsed?.method !== "initialize") {
      res.writeHead(400).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "No session" }, id: null }));
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: mode === "json",
      onsessioninitialized: (id) => transports.set(id, transport),
    });
    transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
    await newServer().connect(transport);
  }
  await transport.handleRequest(req, res, parsed);
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => writeFileSync(portFile, String(server.address().port)));
