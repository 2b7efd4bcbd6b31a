// A snippet written for Chrome's built-in Prompt API (webmachinelearning/prompt-api), as a
// developer would have it. tests/browser/test_client.py runs it on intab with one line added:
// the import of intab's LanguageModel.

const availability = await LanguageModel.availability();
console.log(`availability: ${availability}`);
const progress = [];
const session = await LanguageModel.create({
  initialPrompts: [{ role: "system", content: "You are a helpful AI assistant." }],
  monitor(m) {
    m.addEventListener("downloadprogress", (e) => {
      progress.push(e.loaded);
      console.log(`Downloaded ${e.loaded * 100}%`);
    });
  },
});
const result = await session.prompt("What is the capital of France?");
console.log(result);

const stream = session.promptStreaming("What is the capital of Italy?");
let streamed = "";
for await (const chunk of stream) {
  streamed += chunk;
}
console.log(`${session.contextUsage}/${session.contextWindow} tokens used`);

window.snippetResult = { availability, progress, result, streamed, usage: session.contextUsage, window: session.contextWindow };
