// `wf_loadgen --http`: the command line of the HTTP load generator
// (http_loadgen.h), against routers' OpenAI-compatible endpoints.
//
// Example:
//   int main(int argc, char** argv) {
//     if (wf::loadgen::WantsHttpMode(argc, argv)) return wf::loadgen::HttpMain(argc, argv);
//     ...
//   }
#ifndef WF_TOOLS_LOADGEN_HTTP_MAIN_H_
#define WF_TOOLS_LOADGEN_HTTP_MAIN_H_

namespace wf::loadgen {

// Whether argv holds "--http" (or "--http=true").
bool WantsHttpMode(int argc, char** argv);

// Parses the HTTP-mode flags, runs the load and prints the report. Returns
// the process exit status: 0 every request succeeded, 3 some failed (figures
// still printed), 1 the routers cannot be used, 2 bad usage.
int HttpMain(int argc, char** argv);

}  // namespace wf::loadgen

#endif  // WF_TOOLS_LOADGEN_HTTP_MAIN_H_
