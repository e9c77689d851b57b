// One Kerberos password check driven step by step from JavaScript.
//
// No function here touches the network: libkrb5's step APIs produce request bytes and
// consume reply bytes, and the TypeScript transport moves them. Every method that runs
// libkrb5 code returns a Promise and runs on libuv's thread pool (string-to-key and
// decryption are CPU work), one operation at a time per session, so each session's
// krb5_context is only ever used by one thread at a time.
#pragma once

#include <krb5/krb5.h>
#include <napi.h>

#include <string>
#include <vector>

#include "secret.h"

namespace saslgate {

// Sets the profile (krb5.conf path list) every new session's context is built from.
// An empty path or missing files give an empty profile (libkrb5 needs none of it: realm
// to KDC mapping is ours).
long ConfigureProfile(const std::string& path);

// `service/<this host>` as krb5_sname_to_principal(NULL, service, KRB5_NT_SRV_HST) makes it
// under the configured profile, without the realm. Blocks on host name look-ups (getaddrinfo,
// getnameinfo) when the profile canonicalises: called once at start, never per check.
krb5_error_code HostServicePrincipal(const std::string& service, std::string* name,
                                     std::string* message);

struct StepResult {
  krb5_error_code code = 0;
  unsigned int flags = 0;
  krb5_data out{};
  krb5_data realm{};
  std::string message;
};

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  void EndJob();
  bool closed() const { return closed_; }

  // Run on a worker thread by the jobs below.
  void DoAsStart(SecretBytes& password, StepResult& r);
  void DoUseKey(krb5_enctype enctype, SecretBytes& key, StepResult& r);
  void DoUsePassword(krb5_enctype enctype, SecretBytes& password, std::vector<unsigned char>& salt,
                     bool default_salt, std::vector<unsigned char>& params, StepResult& r);
  void DoAsRestart(StepResult& r);
  void DoAsStep(const std::vector<unsigned char>& in, StepResult& r);
  void DoTgsStart(StepResult& r);
  void DoTgsStep(const std::vector<unsigned char>& in, StepResult& r);
  void DoVerify(const std::string& keytab, StepResult& r);

 private:
  Napi::Value AsStart(const Napi::CallbackInfo& info);
  Napi::Value UseKey(const Napi::CallbackInfo& info);
  Napi::Value UsePassword(const Napi::CallbackInfo& info);
  Napi::Value AsRestart(const Napi::CallbackInfo& info);
  Napi::Value DefaultSalt(const Napi::CallbackInfo& info);
  Napi::Value AsStep(const Napi::CallbackInfo& info);
  Napi::Value TgsStart(const Napi::CallbackInfo& info);
  Napi::Value TgsStep(const Napi::CallbackInfo& info);
  Napi::Value Verify(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bool BeginJob(Napi::Env env);
  krb5_error_code NewInitCreds();
  void InstallKey(krb5_enctype enctype, const unsigned char* key, unsigned int length, StepResult& r);
  void StartFromKeytab(StepResult& r);
  void SetMessage(StepResult& r);
  void RemoveDerivedKey();
  void FreeAll();

  krb5_context ctx_ = nullptr;
  krb5_principal client_ = nullptr;
  krb5_principal server_ = nullptr;
  std::string server_name_;
  bool as_service_ = true;
  // In AS mode the verified ticket must carry TKT_FLG_INITIAL: a ticket the KDC issued in a
  // TGS exchange (S4U2Proxy, constrained delegation, a forwarded TGT) proves no password.
  bool require_initial_ = true;
  // The only enctypes the AS exchange asks for (krb5_get_init_creds_opt_set_etype_list
  // keeps a pointer to this list, so it lives as long as opt_).
  std::vector<krb5_enctype> enctypes_;
  int ticket_lifetime_s_ = 300;
  krb5_get_init_creds_opt* opt_ = nullptr;
  krb5_init_creds_context icc_ = nullptr;
  krb5_tkt_creds_context tcc_ = nullptr;
  krb5_ccache cc_ = nullptr;
  krb5_creds as_creds_{};
  bool have_as_creds_ = false;
  krb5_creds svc_creds_{};
  bool have_svc_creds_ = false;
  krb5_keytab derived_kt_ = nullptr;
  std::string derived_kt_name_;
  krb5_enctype derived_enctype_ = 0;
  bool derived_has_entry_ = false;
  bool busy_ = false;
  bool closed_ = false;
};

}  // namespace saslgate
