// Package config owns awakend's config directory: finding its files in an
// fs.FS, parsing their YAML with positions, decoding the resources strictly,
// resolving ${…} references, checking ids across the directory, and
// reporting every problem as "path:line:col: error: message [code]". Build
// turns a loaded directory into a registry.Set. The package is pure: it does
// I/O only through the fs.FS and the functions in Options, keeps no state
// but an optional Cache, and does not log. Load decodes files on several
// goroutines, all ended before it returns.
//
// # Files
//
// Every *.yaml, *.yml and *.json file below the root, recursively, is
// read, in fs.WalkDir order (names sorted within each directory);
// extensions are case-sensitive. Names that Ignored reports are skipped,
// files and directories alike. Symlinks are followed, to files and to
// directories (Kubernetes ConfigMap volumes: x.yaml -> ..data/x.yaml, where
// the hidden ..data is never walked itself); a symlinked directory that
// contains itself, or nesting deeper than 32 directories, is reported as
// CodeRead. A broken symlink with a config extension is CodeRead; other
// broken symlinks are ignored.
//
// Each file holds YAML documents ("---" separated). A document is empty,
// null, or a mapping with any of providers, models, model_pools and agents,
// each a list of resources. JSON files are parsed as YAML too, after
// rewriting the two JSON escapes yaml.v3 lacks ("\/" and UTF-16 surrogate
// pairs), so an awaken AgentSystemConfig file loads unchanged.
//
// # Decoding
//
// Field names and defaults are awaken's (see registry). Unknown fields are
// errors everywhere but inside the free-form values sections,
// stop_conditions and endpoint.options. A provider's adapter_options takes
// headers (string to string) and mock (latency_ms, chunk_delay_ms, reply,
// fail_status: the mock adapter's behaviour). Details beyond awaken:
//
//   - An explicit null is the same as leaving a field out, except for
//     allowed_tools and allowed_tool_patterns, where it is awaken's
//     explicit "no allow rules", and for required fields, where it is
//     CodeMissingField.
//   - A string field takes any scalar as written (2024-06 and 4 are
//     strings); numbers and booleans must be YAML numbers and booleans
//     (quoted "30" is not a number), except after interpolation, which
//     always yields text that is then parsed. Booleans are YAML 1.2's
//     true/false, not yes/no/on/off.
//   - Scalars with tags other than YAML's own (!vault x) are refused in
//     typed fields.
//   - Merge keys (<<: *defaults) work; a mapping's own keys win over merged
//     ones, earlier merge sources over later ones.
//   - Lists keep one element per element of the file, so that registry
//     field paths ("plugin_ids.3") match the file.
//   - Interpolated values in free-form values are strings.
//
// # Interpolation
//
// Every scalar value (not keys) may hold ${VAR}, ${VAR:-default} (default
// when VAR is unset or empty; defaults may nest references),
// ${file:PATH} (relative paths are read from the config directory and may
// not leave it; absolute ones through Options.ReadFile; one trailing
// newline is trimmed), ${credential:NAME} (Options.CredentialsDir/NAME,
// a plain file name; trimmed likewise) and $$ for a literal $. A $ not
// followed by { or $ is literal. Resolved values are not expanded again;
// defaults nest at most 8 deep. Anything that cannot be resolved is
// CodeInterpolation at the scalar, never an empty value. In flow style
// ({id: p, api_key: "${KEY}"}) quote references: { and } end a plain
// scalar there.
//
// # Diagnostics
//
// Load and Build report every problem they find, sorted by file, line,
// column and code. A diagnostic without a file (CodeEmpty) prints as "error:
// message [code]". yaml.v3 gives syntax errors no column, and as their line
// the one where the enclosing block starts, so for files up to 1 MiB the
// loader finds the place of the mistake itself: the first line, then the
// first character of it, at which the file's prefix fails the same way,
// moved back to the start of its token. A YAML syntax error ends its file:
// yaml.v3 cannot resume after one; the documents before it are decoded.
// Messages quote the operand as written in the file: values produced by
// interpolation appear as their source text (${OPENAI_KEY}), in messages and
// in resource references alike, and the values of api_key,
// endpoint.auth.token (bearer_token) and adapter_options.headers are never
// shown. Numbers that the registry prints in its limits (max_output_tokens
// (8) must not exceed context_window (4)) are shown as numbers even when
// they were interpolated: they cannot be secrets.
//
// When Load finds problems, it still runs the registry's checks on
// everything that decoded, duplicates included (each in place of the
// resource it repeats), so that one run reports every kind of mistake. It
// leaves out registry diagnostics that repeat a load diagnostic (a field
// already reported), and a reference to a missing resource that may be in
// what did not decode: when a file could not be read; when a resource of
// that kind (models and pools count as one) has no usable id; when the id
// appears in the text that follows a syntax error, or among the values of a
// top-level key, list or item that was not decoded. A missing reference
// names the closest existing id of the kinds it may refer to, as a
// did-you-mean.
//
// # Limits
//
// Files (and files that references read) over Options.MaxFileSize are
// CodeTooLarge. YAML aliases may expand to at most 1,000,000 nodes per
// file, each expansion counted every time it is visited; an alias inside
// the node it names, free-form values nested over 1,000 levels, or more
// than 500 problems in one file are CodeTooLarge too, and end the decoding
// of that file (like a compiler's "too many errors").
//
// # Fingerprint
//
// Config.Fingerprint and Error.Fingerprint are the hex SHA-256 of every
// config file's path and the SHA-256 of its contents, in sorted path
// order, then of every referenced file's path and contents (or read
// error). The environment is not part of it. With a Cache, a file whose
// stat is as it was when it was last read is not read again, and its
// earlier hash stands for its contents.
package config
