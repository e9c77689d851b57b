#include "session.h"

#include <profile.h>

#include <cstring>
#include <functional>
#include <mutex>

#include "keytab_pool.h"

namespace saslgate {

namespace {

std::mutex g_profile_mutex;
profile_t g_profile = nullptr;

krb5_error_code NewContext(krb5_context* ctx) {
  std::lock_guard<std::mutex> lock(g_profile_mutex);
  if (g_profile != nullptr) return krb5_init_context_profile(g_profile, 0, ctx);
  return krb5_init_context(ctx);
}

std::vector<unsigned char> BufferBytes(const Napi::Value& v) {
  auto b = v.As<Napi::Buffer<unsigned char>>();
  return std::vector<unsigned char>(b.Data(), b.Data() + b.Length());
}

Napi::Value StepToJs(Napi::Env env, StepResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("code", Napi::Number::New(env, r.code));
  o.Set("continue", Napi::Boolean::New(env, (r.flags & KRB5_INIT_CREDS_STEP_FLAG_CONTINUE) != 0));
  if (r.out.length > 0) {
    o.Set("out", Napi::Buffer<char>::Copy(env, r.out.data, r.out.length));
  } else {
    o.Set("out", env.Null());
  }
  if (r.realm.length > 0) {
    o.Set("realm", Napi::String::New(env, r.realm.data, r.realm.length));
  } else {
    o.Set("realm", env.Null());
  }
  o.Set("message", r.message.empty() ? env.Null() : Napi::String::New(env, r.message));
  krb5_free_data_contents(nullptr, &r.out);
  krb5_free_data_contents(nullptr, &r.realm);
  return o;
}

// Runs one libkrb5 operation of a session on the thread pool and settles a Promise.
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, Session* session, Napi::Object self, std::function<void(StepResult&)> run)
      : Napi::AsyncWorker(env),
        session_(session),
        run_(std::move(run)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);
  }
  ~Job() override {
    krb5_free_data_contents(nullptr, &result_.out);
    krb5_free_data_contents(nullptr, &result_.realm);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { run_(result_); }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    session_->EndJob();
    deferred_.Resolve(StepToJs(Env(), result_));
  }
  void OnError(const Napi::Error& e) override {
    session_->EndJob();
    deferred_.Reject(e.Value());
  }

 private:
  Session* session_;
  std::function<void(StepResult&)> run_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  StepResult result_;
};

}  // namespace

krb5_error_code HostServicePrincipal(const std::string& service, std::string* name,
                                     std::string* message) {
  krb5_context ctx = nullptr;
  krb5_error_code code = NewContext(&ctx);
  if (code != 0) return code;
  krb5_principal p = nullptr;
  // NULL host: gethostname(), then libkrb5's canonicalisation as the profile says
  // (dns_canonicalize_hostname, rdns), exactly what saslauthd -a kerberos5 verifies against.
  code = krb5_sname_to_principal(ctx, nullptr, service.c_str(), KRB5_NT_SRV_HST, &p);
  if (code == 0) {
    char* text = nullptr;
    code = krb5_unparse_name_flags(ctx, p, KRB5_PRINCIPAL_UNPARSE_NO_REALM, &text);
    if (code == 0) {
      *name = text;
      krb5_free_unparsed_name(ctx, text);
    }
    krb5_free_principal(ctx, p);
  }
  if (code != 0) {
    const char* m = krb5_get_error_message(ctx, code);
    *message = m;
    krb5_free_error_message(ctx, m);
  }
  krb5_free_context(ctx);
  return code;
}

long ConfigureProfile(const std::string& path) {
  profile_t p = nullptr;
  long code = 0;
  if (!path.empty()) code = profile_init_path(path.c_str(), &p);
  if (path.empty() || code == ENOENT) {
    const_profile_filespec_t none[] = {nullptr};
    code = profile_init(none, &p);
  }
  if (code != 0) return code;
  std::lock_guard<std::mutex> lock(g_profile_mutex);
  if (g_profile != nullptr) profile_release(g_profile);
  g_profile = p;
  return 0;
}

Napi::Function Session::Init(Napi::Env env) {
  return DefineClass(env, "Session",
                     {
                         InstanceMethod<&Session::AsStart>("asStart"),
                         InstanceMethod<&Session::UseKey>("useKey"),
                         InstanceMethod<&Session::UsePassword>("usePassword"),
                         InstanceMethod<&Session::AsRestart>("asRestart"),
                         InstanceMethod<&Session::DefaultSalt>("defaultSalt"),
                         InstanceMethod<&Session::AsStep>("asStep"),
                         InstanceMethod<&Session::TgsStart>("tgsStart"),
                         InstanceMethod<&Session::TgsStep>("tgsStep"),
                         InstanceMethod<&Session::Verify>("verify"),
                         InstanceMethod<&Session::Close>("close"),
                     });
}

// new Session({ client, server, asService, requireInitial, enctypes, ticketLifetimeS })
Session::Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "Session: options object required").ThrowAsJavaScriptException();
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  if (!o.Get("client").IsString() || !o.Get("server").IsString()) {
    Napi::TypeError::New(env, "Session: client and server must be strings")
        .ThrowAsJavaScriptException();
    return;
  }
  std::string client = o.Get("client").As<Napi::String>();
  server_name_ = o.Get("server").As<Napi::String>();
  if (o.Get("asService").IsBoolean()) as_service_ = o.Get("asService").As<Napi::Boolean>();
  if (o.Get("ticketLifetimeS").IsNumber()) {
    ticket_lifetime_s_ = o.Get("ticketLifetimeS").As<Napi::Number>().Int32Value();
  }
  require_initial_ = as_service_;
  if (o.Get("requireInitial").IsBoolean()) {
    require_initial_ = o.Get("requireInitial").As<Napi::Boolean>();
  }
  // Required: libkrb5 1.20's default list includes des3 and rc4, so a spoofed hint could make
  // it send a PA-ENC-TIMESTAMP under a weak key. No list, no session (fail closed).
  Napi::Value list = o.Get("enctypes");
  if (!list.IsArray() || list.As<Napi::Array>().Length() == 0 ||
      list.As<Napi::Array>().Length() > 32) {
    Napi::TypeError::New(env, "Session: enctypes must be a non-empty array of enctype numbers")
        .ThrowAsJavaScriptException();
    return;
  }
  Napi::Array arr = list.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, "Session: enctypes must be numbers").ThrowAsJavaScriptException();
      return;
    }
    enctypes_.push_back(v.As<Napi::Number>().Int32Value());
  }
  if (client.find('\0') != std::string::npos || server_name_.find('\0') != std::string::npos) {
    Napi::TypeError::New(env, "Session: NUL in a principal name").ThrowAsJavaScriptException();
    return;
  }

  krb5_error_code code = NewContext(&ctx_);
  if (code == 0) code = krb5_parse_name_flags(ctx_, client.c_str(), KRB5_PRINCIPAL_PARSE_REQUIRE_REALM, &client_);
  if (code == 0) code = krb5_parse_name_flags(ctx_, server_name_.c_str(), KRB5_PRINCIPAL_PARSE_REQUIRE_REALM, &server_);
  if (code == 0) code = krb5_get_init_creds_opt_alloc(ctx_, &opt_);
  if (code != 0) {
    std::string msg = "Session: libkrb5 error " + std::to_string(code);
    if (ctx_ != nullptr) {
      const char* m = krb5_get_error_message(ctx_, code);
      msg += std::string(": ") + m;
      krb5_free_error_message(ctx_, m);
    }
    FreeAll();
    Napi::Error err = Napi::Error::New(env, msg);
    err.Set("krb5Code", Napi::Number::New(env, code));
    err.ThrowAsJavaScriptException();
    return;
  }
  krb5_get_init_creds_opt_set_forwardable(opt_, 0);
  krb5_get_init_creds_opt_set_proxiable(opt_, 0);
  krb5_get_init_creds_opt_set_tkt_life(opt_, ticket_lifetime_s_);
  krb5_get_init_creds_opt_set_address_list(opt_, nullptr);
  krb5_get_init_creds_opt_set_etype_list(opt_, enctypes_.data(), static_cast<int>(enctypes_.size()));
}

Session::~Session() { FreeAll(); }

bool Session::BeginJob(Napi::Env env) {
  if (closed_) {
    Napi::Error::New(env, "Session: closed").ThrowAsJavaScriptException();
    return false;
  }
  if (busy_) {
    Napi::Error::New(env, "Session: an operation is already running").ThrowAsJavaScriptException();
    return false;
  }
  busy_ = true;
  return true;
}

void Session::EndJob() {
  busy_ = false;
  if (closed_) FreeAll();
}

void Session::SetMessage(StepResult& r) {
  if (r.code == 0 || ctx_ == nullptr) return;
  const char* m = krb5_get_error_message(ctx_, r.code);
  r.message = m;
  krb5_free_error_message(ctx_, m);
}

krb5_error_code Session::NewInitCreds() {
  if (icc_ != nullptr) {
    krb5_init_creds_free(ctx_, icc_);
    icc_ = nullptr;
  }
  krb5_error_code code = krb5_init_creds_init(ctx_, client_, nullptr, nullptr, 0, opt_, &icc_);
  if (code == 0 && as_service_) code = krb5_init_creds_set_service(ctx_, icc_, server_name_.c_str());
  return code;
}

void Session::DoAsStart(SecretBytes& password, StepResult& r) {
  r.code = NewInitCreds();
  // libkrb5 keeps its own copy (and zaps it when the init_creds context is freed).
  if (r.code == 0) r.code = krb5_init_creds_set_password(ctx_, icc_, password.c_str());
  password.Wipe();
  if (r.code == 0) {
    krb5_data in{};
    r.code = krb5_init_creds_step(ctx_, icc_, &in, &r.out, &r.realm, &r.flags);
  }
  SetMessage(r);
}

void Session::RemoveDerivedKey() {
  if (derived_kt_ == nullptr || !derived_has_entry_) return;
  krb5_keytab_entry e{};
  e.principal = client_;
  e.vno = 1;
  e.key.enctype = derived_enctype_;
  krb5_kt_remove_entry(ctx_, derived_kt_, &e);
  derived_has_entry_ = false;
}

// Puts `key` into this session's MEMORY keytab as the client's only key and restarts the AS
// exchange from that keytab: from here on libkrb5 looks keys up and never runs string-to-key,
// whatever a later (spoofed) reply asks for.
void Session::InstallKey(krb5_enctype enctype, const unsigned char* key, unsigned int length,
                         StepResult& r) {
  if (derived_kt_ == nullptr) {
    derived_kt_name_ = AcquireKeytabName();
    r.code = krb5_kt_resolve(ctx_, derived_kt_name_.c_str(), &derived_kt_);
    if (r.code != 0) {
      ReleaseKeytabName(derived_kt_name_);
      derived_kt_name_.clear();
      derived_kt_ = nullptr;
    }
  }
  RemoveDerivedKey();
  if (r.code == 0) {
    krb5_keytab_entry e{};
    e.principal = client_;
    e.vno = 1;
    e.key.magic = KV5M_KEYBLOCK;
    e.key.enctype = enctype;
    e.key.length = length;
    e.key.contents = const_cast<unsigned char*>(key);
    // The MEMORY keytab copies the key (and zaps it on removal).
    r.code = krb5_kt_add_entry(ctx_, derived_kt_, &e);
    if (r.code == 0) {
      derived_has_entry_ = true;
      derived_enctype_ = enctype;
    }
  }
  if (r.code == 0) StartFromKeytab(r);
}

// A new AS exchange from the MEMORY keytab's key (InstallKey put it there).
void Session::StartFromKeytab(StepResult& r) {
  r.code = NewInitCreds();
  if (r.code == 0) r.code = krb5_init_creds_set_keytab(ctx_, icc_, derived_kt_);
  if (r.code == 0) {
    krb5_data in{};
    r.code = krb5_init_creds_step(ctx_, icc_, &in, &r.out, &r.realm, &r.flags);
  }
}

// Restarts the AS exchange (e.g. on the primary KDC, after a replica's PREAUTH_FAILED) from the
// key the failed exchange derived: no second string-to-key. Only while that exchange has not
// completed (a completed one removes the key).
void Session::DoAsRestart(StepResult& r) {
  if (derived_kt_ == nullptr || !derived_has_entry_) {
    r.code = EINVAL;
    r.message = "asRestart without a derived key";
    return;
  }
  StartFromKeytab(r);
  SetMessage(r);
}

void Session::DoUseKey(krb5_enctype enctype, SecretBytes& key, StepResult& r) {
  InstallKey(enctype, key.data(), static_cast<unsigned int>(key.size()), r);
  key.Wipe();
  SetMessage(r);
}

// libkrb5's own string-to-key, run once and explicitly (for enctypes node:crypto does not
// derive, or with kerberos.deriveKeys off), then the same keytab path as DoUseKey. libkrb5's
// password path would run string-to-key again for every reply that names other parameters.
void Session::DoUsePassword(krb5_enctype enctype, SecretBytes& password,
                            std::vector<unsigned char>& salt, bool default_salt,
                            std::vector<unsigned char>& params, StepResult& r) {
  krb5_data pw{};
  pw.data = reinterpret_cast<char*>(password.mutable_data());
  pw.length = static_cast<unsigned int>(password.size());
  krb5_data salt_data{};
  krb5_data defsalt{};
  if (default_salt) {
    r.code = krb5_principal2salt(ctx_, client_, &defsalt);
    salt_data = defsalt;
  } else {
    salt_data.data = reinterpret_cast<char*>(salt.data());
    salt_data.length = static_cast<unsigned int>(salt.size());
  }
  krb5_data params_data{};
  params_data.data = reinterpret_cast<char*>(params.data());
  params_data.length = static_cast<unsigned int>(params.size());
  krb5_keyblock key{};
  if (r.code == 0) {
    r.code = krb5_c_string_to_key_with_params(ctx_, enctype, &pw, &salt_data,
                                              params.empty() ? nullptr : &params_data, &key);
  }
  password.Wipe();
  if (defsalt.data != nullptr) krb5_free_data_contents(ctx_, &defsalt);
  if (r.code == 0) {
    InstallKey(key.enctype, key.contents, key.length, r);
    krb5_free_keyblock_contents(ctx_, &key);  // zeroes the key before freeing it
  }
  SetMessage(r);
}

void Session::DoAsStep(const std::vector<unsigned char>& bytes, StepResult& r) {
  if (icc_ == nullptr) {
    r.code = EINVAL;
    r.message = "asStep before asStart";
    return;
  }
  krb5_data in{};
  in.data = reinterpret_cast<char*>(const_cast<unsigned char*>(bytes.data()));
  in.length = static_cast<unsigned int>(bytes.size());
  r.code = krb5_init_creds_step(ctx_, icc_, &in, &r.out, &r.realm, &r.flags);
  if (r.code == 0 && (r.flags & KRB5_INIT_CREDS_STEP_FLAG_CONTINUE) == 0) {
    if (have_as_creds_) {
      krb5_free_cred_contents(ctx_, &as_creds_);
      have_as_creds_ = false;
    }
    r.code = krb5_init_creds_get_creds(ctx_, icc_, &as_creds_);
    if (r.code == 0) have_as_creds_ = true;
    // The derived key is no longer needed once the AS exchange is done.
    RemoveDerivedKey();
  }
  SetMessage(r);
}

void Session::DoTgsStart(StepResult& r) {
  if (!have_as_creds_) {
    r.code = EINVAL;
    r.message = "tgsStart before a completed AS exchange";
    return;
  }
  if (cc_ == nullptr) {
    r.code = krb5_cc_new_unique(ctx_, "MEMORY", nullptr, &cc_);
    if (r.code == 0) r.code = krb5_cc_initialize(ctx_, cc_, client_);
    if (r.code == 0) r.code = krb5_cc_store_cred(ctx_, cc_, &as_creds_);
  }
  if (r.code == 0) {
    krb5_creds in_creds{};
    in_creds.client = client_;
    in_creds.server = server_;
    if (tcc_ != nullptr) krb5_tkt_creds_free(ctx_, tcc_);
    tcc_ = nullptr;
    r.code = krb5_tkt_creds_init(ctx_, cc_, &in_creds, 0, &tcc_);
  }
  if (r.code == 0) {
    krb5_data in{};
    r.code = krb5_tkt_creds_step(ctx_, tcc_, &in, &r.out, &r.realm, &r.flags);
  }
  SetMessage(r);
}

void Session::DoTgsStep(const std::vector<unsigned char>& bytes, StepResult& r) {
  if (tcc_ == nullptr) {
    r.code = EINVAL;
    r.message = "tgsStep before tgsStart";
    return;
  }
  krb5_data in{};
  in.data = reinterpret_cast<char*>(const_cast<unsigned char*>(bytes.data()));
  in.length = static_cast<unsigned int>(bytes.size());
  r.code = krb5_tkt_creds_step(ctx_, tcc_, &in, &r.out, &r.realm, &r.flags);
  if (r.code == 0 && (r.flags & KRB5_TKT_CREDS_STEP_FLAG_CONTINUE) == 0) {
    if (have_svc_creds_) {
      krb5_free_cred_contents(ctx_, &svc_creds_);
      have_svc_creds_ = false;
    }
    r.code = krb5_tkt_creds_get_creds(ctx_, tcc_, &svc_creds_);
    if (r.code == 0) have_svc_creds_ = true;
  }
  SetMessage(r);
}

void Session::DoVerify(const std::string& keytab_name, StepResult& r) {
  krb5_creds* creds = as_service_ ? (have_as_creds_ ? &as_creds_ : nullptr)
                                  : (have_svc_creds_ ? &svc_creds_ : nullptr);
  if (creds == nullptr) {
    r.code = EINVAL;
    r.message = "verify before a service ticket was obtained";
    return;
  }
  // A context of its own, with the local clock: with kdc_timesync on (libkrb5's default) the
  // session's context took its time offset from the AS-REP's authtime, which a spoofer
  // chooses, and krb5_rd_req would check the ticket's times against that clock.
  krb5_context vctx = nullptr;
  krb5_auth_context ac_c = nullptr;
  krb5_auth_context ac_s = nullptr;
  krb5_keytab kt = nullptr;
  krb5_ticket* ticket = nullptr;
  krb5_data apreq{};
  r.code = NewContext(&vctx);
  if (r.code != 0) {
    r.message = "cannot create the verify context";
    return;
  }
  // The times in creds are the AS-REP's claim (the reply's encrypted part, not the ticket):
  // krb5_mk_req_extended refuses creds whose claimed times are off the local clock, so it
  // gets a shallow copy with times of now. What counts is checked by krb5_rd_req: the
  // ticket's own times, which only the KDC holding our key could write, on the local clock.
  krb5_creds local = *creds;
  krb5_timestamp now = 0;
  r.code = krb5_timeofday(vctx, &now);
  local.times.authtime = now;
  local.times.starttime = now;
  local.times.endtime = now + 60;
  local.times.renew_till = 0;
  if (r.code == 0) r.code = krb5_mk_req_extended(vctx, &ac_c, 0, nullptr, &local, &apreq);
  if (r.code == 0) {
    r.code = keytab_name.empty() ? krb5_kt_default(vctx, &kt)
                                 : krb5_kt_resolve(vctx, keytab_name.c_str(), &kt);
  }
  if (r.code == 0) r.code = krb5_auth_con_init(vctx, &ac_s);
  // No replay cache, as MIT's own krb5_verify_init_creds does.
  if (r.code == 0) r.code = krb5_auth_con_setflags(vctx, ac_s, 0);
  if (r.code == 0) r.code = krb5_rd_req(vctx, &ac_s, &apreq, server_, kt, nullptr, &ticket);
  bool not_initial = false;
  if (r.code == 0) {
    if (ticket->enc_part2 == nullptr ||
        !krb5_principal_compare(vctx, ticket->enc_part2->client, client_)) {
      r.code = KRB5KRB_AP_ERR_BADMATCH;
    } else if (require_initial_ && (ticket->enc_part2->flags & TKT_FLG_INITIAL) == 0) {
      // Read from the ticket's encrypted part, which only the KDC holding our key could
      // write: the AS-REP's own flags are the (possibly spoofed) reply's claim.
      r.code = KRB5KRB_AP_ERR_TKT_INVALID;
      not_initial = true;
    }
  }
  if (not_initial) {
    r.message = "the verified ticket lacks the INITIAL flag (not issued in an AS exchange)";
  } else if (r.code != 0) {
    const char* m = krb5_get_error_message(vctx, r.code);
    r.message = m;
    krb5_free_error_message(vctx, m);
  }
  if (ticket != nullptr) krb5_free_ticket(vctx, ticket);
  if (ac_s != nullptr) krb5_auth_con_free(vctx, ac_s);
  if (ac_c != nullptr) krb5_auth_con_free(vctx, ac_c);
  if (kt != nullptr) krb5_kt_close(vctx, kt);
  krb5_free_data_contents(vctx, &apreq);
  krb5_free_context(vctx);
}

Napi::Value Session::AsStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "asStart(password: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto pw = info[0].As<Napi::Buffer<char>>();
  // Checked on the caller's bytes: no copy exists yet on the way out.
  if (pw.Length() == 0 || std::memchr(pw.Data(), 0, pw.Length()) != nullptr) {
    Napi::TypeError::New(env, "asStart: empty password or NUL byte").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // One wiped heap copy; the job's closure (copied by std::function) holds only a pointer.
  // Made before BeginJob: if that refuses, the copy is wiped and freed on return.
  auto password = std::make_shared<SecretBytes>(pw.Data(), pw.Length());
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this, password](StepResult& r) { DoAsStart(*password, r); });
  job->Queue();
  return job->Promise();
}

Napi::Value Session::UseKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "useKey(enctype: number, key: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  krb5_enctype enctype = info[0].As<Napi::Number>().Int32Value();
  auto raw = info[1].As<Napi::Buffer<unsigned char>>();
  if (raw.Length() == 0 || raw.Length() > 64) {
    Napi::TypeError::New(env, "useKey: bad key length").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto key = std::make_shared<SecretBytes>(raw.Data(), raw.Length());
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this, enctype, key](StepResult& r) { DoUseKey(enctype, *key, r); });
  job->Queue();
  return job->Promise();
}

Napi::Value Session::AsRestart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this](StepResult& r) { DoAsRestart(r); });
  job->Queue();
  return job->Promise();
}

// usePassword(enctype, password, salt: Buffer | null, s2kparams: Buffer | null); a null salt is
// the principal's default salt.
Napi::Value Session::UsePassword(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsBuffer() ||
      !(info[2].IsBuffer() || info[2].IsNull()) || !(info[3].IsBuffer() || info[3].IsNull())) {
    Napi::TypeError::New(env, "usePassword(enctype, password, salt | null, s2kparams | null)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  krb5_enctype enctype = info[0].As<Napi::Number>().Int32Value();
  auto pw = info[1].As<Napi::Buffer<char>>();
  bool default_salt = info[2].IsNull();
  std::vector<unsigned char> salt = default_salt ? std::vector<unsigned char>() : BufferBytes(info[2]);
  std::vector<unsigned char> params = info[3].IsNull() ? std::vector<unsigned char>() : BufferBytes(info[3]);
  // Checked on the caller's bytes: no copy of the password exists yet on the way out.
  if (pw.Length() == 0 || std::memchr(pw.Data(), 0, pw.Length()) != nullptr || salt.size() > 1024 ||
      params.size() > 64) {
    Napi::TypeError::New(env, "usePassword: bad password, salt or s2kparams").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // One wiped heap copy, shared by pointer with the job (as in AsStart).
  auto password = std::make_shared<SecretBytes>(pw.Data(), pw.Length());
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this, enctype, password, salt, default_salt, params](StepResult& r) mutable {
                        DoUsePassword(enctype, *password, salt, default_salt, params, r);
                      });
  job->Queue();
  return job->Promise();
}

// The client principal's default salt (realm and name components), as libkrb5 computes it.
Napi::Value Session::DefaultSalt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Runs on the calling thread, so never while a job uses the context.
  if (closed_ || busy_ || ctx_ == nullptr) {
    Napi::Error::New(env, "Session: closed or busy").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  krb5_data salt{};
  krb5_error_code code = krb5_principal2salt(ctx_, client_, &salt);
  if (code != 0) {
    Napi::Error err = Napi::Error::New(env, "defaultSalt: libkrb5 error");
    err.Set("krb5Code", Napi::Number::New(env, code));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<char> out = Napi::Buffer<char>::Copy(env, salt.data, salt.length);
  krb5_free_data_contents(ctx_, &salt);
  return out;
}

Napi::Value Session::AsStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "asStep(reply: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<unsigned char> in = BufferBytes(info[0]);
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this, in](StepResult& r) { DoAsStep(in, r); });
  job->Queue();
  return job->Promise();
}

Napi::Value Session::TgsStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this](StepResult& r) { DoTgsStart(r); });
  job->Queue();
  return job->Promise();
}

Napi::Value Session::TgsStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "tgsStep(reply: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<unsigned char> in = BufferBytes(info[0]);
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this, in](StepResult& r) { DoTgsStep(in, r); });
  job->Queue();
  return job->Promise();
}

Napi::Value Session::Verify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string keytab;
  if (info.Length() >= 1 && info[0].IsString()) keytab = info[0].As<Napi::String>();
  if (keytab.find('\0') != std::string::npos) {
    Napi::TypeError::New(env, "verify: NUL in keytab name").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!BeginJob(env)) return env.Undefined();
  auto* job = new Job(env, this, info.This().As<Napi::Object>(),
                      [this, keytab](StepResult& r) { DoVerify(keytab, r); });
  job->Queue();
  return job->Promise();
}

Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  closed_ = true;
  if (!busy_) FreeAll();
  return info.Env().Undefined();
}

void Session::FreeAll() {
  if (ctx_ == nullptr) return;
  if (icc_ != nullptr) krb5_init_creds_free(ctx_, icc_);
  icc_ = nullptr;
  if (tcc_ != nullptr) krb5_tkt_creds_free(ctx_, tcc_);
  tcc_ = nullptr;
  if (cc_ != nullptr) krb5_cc_destroy(ctx_, cc_);
  cc_ = nullptr;
  if (have_as_creds_) krb5_free_cred_contents(ctx_, &as_creds_);
  have_as_creds_ = false;
  if (have_svc_creds_) krb5_free_cred_contents(ctx_, &svc_creds_);
  have_svc_creds_ = false;
  if (derived_kt_ != nullptr) {
    RemoveDerivedKey();
    krb5_kt_close(ctx_, derived_kt_);
    derived_kt_ = nullptr;
    ReleaseKeytabName(derived_kt_name_);
    derived_kt_name_.clear();
  }
  if (opt_ != nullptr) krb5_get_init_creds_opt_free(ctx_, opt_);
  opt_ = nullptr;
  if (client_ != nullptr) krb5_free_principal(ctx_, client_);
  client_ = nullptr;
  if (server_ != nullptr) krb5_free_principal(ctx_, server_);
  server_ = nullptr;
  krb5_free_context(ctx_);
  ctx_ = nullptr;
}

}  // namespace saslgate
