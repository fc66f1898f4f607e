// PEM files for TLS: a server's certificate chain and private key, and a
// bundle of CA certificates that clients trust. Shared by wf_worker (its gRPC
// port) and wf_router (its HTTP gateway, its gRPC front, and its connections
// to workers), so both check the files the same way and name the same
// problems before any listener starts.
//
// The files are read once, at start-up; nothing reads them again later.
//
// Example:
//   BN_ASSIGN_OR_RETURN(tls::KeyPair pair,
//                       tls::LoadKeyPair("/etc/wf/server.pem", "/etc/wf/server.key"));
//   grpc::SslServerCredentialsOptions options;
//   options.pem_key_cert_pairs.push_back({pair.private_key_pem, pair.cert_chain_pem});
//
//   BN_ASSIGN_OR_RETURN(std::string roots, tls::LoadCaBundle("/etc/wf/ca.pem"));
//   auto creds = grpc::SslCredentials({.pem_root_certs = roots});
#ifndef WF_COMMON_TLS_TLS_FILES_H_
#define WF_COMMON_TLS_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::tls {

// A server identity as PEM text, checked: `cert_chain_pem` holds the leaf
// certificate first (then any intermediates), `private_key_pem` the key that
// belongs to that leaf.
struct KeyPair {
  std::string cert_chain_pem;
  std::string private_key_pem;
};

// Reads and checks a certificate chain and its private key (PEM; the key
// unencrypted). Every error names the file:
//   NOT_FOUND / PERMISSION_DENIED ...  the file cannot be read (errno code)
//   INVALID_ARGUMENT                   no PEM certificate in `cert_file`, a
//                                      certificate that does not parse, no
//                                      PEM private key in `key_file`, or a key
//                                      that does not match the first
//                                      certificate
// Thread-safe.
absl::StatusOr<KeyPair> LoadKeyPair(const std::string& cert_file, const std::string& key_file);

// Reads a bundle of one or more PEM CA certificates and returns it as PEM
// text; errors name the file (unreadable, or no certificate that parses).
absl::StatusOr<std::string> LoadCaBundle(const std::string& ca_file);

// The usual "both or neither" rule of a certificate and its key given as
// settings: INVALID_ARGUMENT naming the one that is missing, e.g.
// "--tls-key-file is required with --tls-cert-file". The names are used as
// given (flag spellings).
absl::Status CheckCertKeyPairSettings(const std::string& cert_file, const std::string& key_file,
                                      const std::string& cert_name, const std::string& key_name);

}  // namespace wf::tls

#endif  // WF_COMMON_TLS_TLS_FILES_H_
