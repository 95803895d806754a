// Package inference proves, end to end, that the real awakend binary serves
// inference the way OpenAI's and Anthropic's clients expect. Its tests
// build cmd/awakend once and start it with a config directory they write,
// through e2e/harness (which learns its readiness from a NOTIFY_SOCKET
// datagram), and talk to it with the official OpenAI and Anthropic Go SDKs
// over real HTTP. The upstreams are providertest servers (OpenAI and
// Anthropic wire formats, refusing what the real APIs refuse) and the mock
// adapter. They show that:
//
//   - completions and streams from a mock agent, an openai provider and an
//     anthropic provider (translated) arrive in OpenAI's shape, with their
//     usage and the X-Awakend-Model/-Provider headers;
//   - errors arrive as the SDK's *openai.Error (unknown model: 404
//     model_not_found; no or a wrong client key: 401 invalid_api_key);
//   - a pool fails over on a 503 before the first byte and not on a 400;
//   - a client that disconnects cancels the upstream call;
//   - a stream finishes on the snapshot (and upstream) it started on while a
//     reload moves the model elsewhere, and the next request goes to the new
//     upstream;
//   - 100 applied reloads under steady load fail no request;
//   - the Anthropic SDK creates, streams and counts tokens on /v1/messages
//     through an anthropic provider (passed through), an openai provider
//     and the mock (translated), runs tool loops, and gets errors in
//     Anthropic's shape and statuses; client keys work as x-api-key;
//   - a tool loop of three tool turns with thinking goes through the
//     anthropic adapter, thinking blocks and signatures carried both ways;
//   - embeddings and the Responses API reach openai providers (the mock
//     answers embeddings), and other adapters answer a 400 naming them;
//   - the mock calls the tools a request offers, on either API.
//
// BenchmarkGatewayOverhead measures what the gateway costs: the same fast
// upstream called directly, through the daemon and through a bare
// httputil.ReverseProxy of the daemon's build (awakend built with the
// benchproxy tag serves both), in alternating blocks, at concurrency 1 and 16
// (latency percentiles and the added latency, throughput, the CPU time per
// request of the client and of the daemon and the proxy processes), the
// time to the first stream chunk, the daemon's own account of its time,
// and its memory. It judges the gateway by its ratios to the proxy in the
// same run. The table goes to standard output. BenchmarkGatewayInProcess
// serves the same load from a gateway in the test process, for a CPU
// profile (-cpuprofile) of the gateway and provider code.
//
// The package has no code of its own outside its tests.
package inference
