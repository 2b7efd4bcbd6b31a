// A snippet written for WebLLM (its README's "OpenAI-style API"), as a developer would have it.
// tests/browser/test_client.py runs it on intab with two lines changed: the import and the model id.
import * as webllm from "https://esm.run/@mlc-ai/web-llm";

const selectedModel = "SmolLM2-135M-Instruct-q0f32-MLC";
const initProgressCallback = (report) => {
  console.log(report.text);
};
const engine = await webllm.CreateMLCEngine(selectedModel, { initProgressCallback });

const messages = [
  { role: "system", content: "You are a helpful AI assistant." },
  { role: "user", content: "What is the capital of France?" },
];
const reply = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 32 });
console.log(reply.choices[0].message);
console.log(reply.usage);

const chunks = await engine.chat.completions.create({
  messages,
  temperature: 0,
  max_tokens: 32,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let streamUsage = null;
for await (const chunk of chunks) {
  streamed += chunk.choices[0]?.delta.content || "";
  if (chunk.usage) streamUsage = chunk.usage;
}
const fullReply = await engine.getMessage();
console.log(await engine.runtimeStatsText());

window.snippetResult = { reply: reply.choices[0].message.content, usage: reply.usage, streamed, streamUsage, fullReply };
