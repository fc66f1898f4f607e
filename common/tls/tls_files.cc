#include "common/tls/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace wf::tls {
namespace {

// PEM files are small; anything bigger is not one.
constexpr size_t kMaxPemBytes = size_t{1} << 20;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// OpenSSL's reason for the last failure on this thread (and clears the queue).
std::string OpenSslReason() {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  if (last == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(last);
  return reason != nullptr ? reason : absl::StrCat("error 0x", absl::Hex(last));
}

// An encrypted key must fail instead of prompting on the terminal.
int NoPassword(char*, int, int, void*) { return 0; }

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxPemBytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat("cannot read the TLS ", what, ": ", text.status().message()));
  }
  return text;
}

BioPtr MemBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate of a PEM text, in order.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& path, const std::string& text,
                                                       const char* what) {
  ERR_clear_error();
  BioPtr bio = MemBio(text);
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory reading " + path);
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
    if (cert == nullptr) break;
    certs.push_back(std::move(cert));
  }
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end = err == 0 || (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE);
  if (!clean_end) {
    return absl::InvalidArgumentError(absl::StrCat("certificate ", certs.size() + 1, " in the TLS ", what, " '", path,
                                                   "' does not parse: ", OpenSslReason()));
  }
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the TLS ", what, " '", path,
                                                   "' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return certs;
}

}  // namespace

absl::StatusOr<KeyPair> LoadKeyPair(const std::string& cert_file, const std::string& key_file) {
  KeyPair pair;
  BN_ASSIGN_OR_RETURN(pair.cert_chain_pem, ReadPem(cert_file, "certificate file"));
  BN_ASSIGN_OR_RETURN(pair.private_key_pem, ReadPem(key_file, "key file"));
  BN_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCertificates(cert_file, pair.cert_chain_pem, "certificate file"));

  ERR_clear_error();
  BioPtr bio = MemBio(pair.private_key_pem);
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory reading " + key_file);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("the TLS key file '", key_file,
                                                   "' holds no unencrypted PEM private key: ", OpenSslReason()));
  }
  if (X509_check_private_key(certs.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("the private key in '", key_file,
                                                   "' does not match the first certificate in '", cert_file, "'"));
  }
  return pair;
}

absl::StatusOr<std::string> LoadCaBundle(const std::string& ca_file) {
  BN_ASSIGN_OR_RETURN(std::string text, ReadPem(ca_file, "CA file"));
  BN_RETURN_IF_ERROR(ParseCertificates(ca_file, text, "CA file").status());
  return text;
}

absl::Status CheckCertKeyPairSettings(const std::string& cert_file, const std::string& key_file,
                                      const std::string& cert_name, const std::string& key_name) {
  if (cert_file.empty() && !key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(cert_name, " is required with ", key_name));
  }
  if (!cert_file.empty() && key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(key_name, " is required with ", cert_name));
  }
  return absl::OkStatus();
}

}  // namespace wf::tls
