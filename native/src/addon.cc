// saslgate's libkrb5 addon: step APIs only, never any network I/O.
#include <krb5/krb5.h>
#include <napi.h>

#include "hardening.h"
#include "session.h"

namespace {

Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (info.Length() >= 1 && info[0].IsString()) path = info[0].As<Napi::String>();
  long code = saslgate::ConfigureProfile(path);
  if (code != 0) {
    Napi::Error err = Napi::Error::New(env, "configure: cannot read the krb5 profile " + path);
    err.Set("krb5Code", Napi::Number::New(env, static_cast<double>(code)));
    err.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// hostServicePrincipal('host') -> 'host/canonical.name' (the profile set by configure()).
Napi::Value HostServicePrincipal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string service = "host";
  if (info.Length() >= 1 && info[0].IsString()) service = info[0].As<Napi::String>();
  std::string name;
  std::string message;
  krb5_error_code code = saslgate::HostServicePrincipal(service, &name, &message);
  if (code != 0) {
    Napi::Error err = Napi::Error::New(env, "krb5_sname_to_principal: " + message);
    err.Set("krb5Code", Napi::Number::New(env, static_cast<double>(code)));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::String::New(env, name);
}

Napi::Object Codes(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
#define CODE(name) c.Set(#name, Napi::Number::New(env, name))
  CODE(KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN);
  CODE(KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN);
  CODE(KRB5KDC_ERR_PREAUTH_FAILED);
  CODE(KRB5KDC_ERR_PREAUTH_REQUIRED);
  CODE(KRB5KDC_ERR_KEY_EXP);
  CODE(KRB5KDC_ERR_CLIENT_REVOKED);
  CODE(KRB5KDC_ERR_POLICY);
  CODE(KRB5KDC_ERR_NAME_EXP);
  CODE(KRB5KDC_ERR_ETYPE_NOSUPP);
  CODE(KRB5KRB_AP_ERR_BAD_INTEGRITY);
  CODE(KRB5KRB_AP_ERR_MODIFIED);
  CODE(KRB5KRB_AP_ERR_BADMATCH);
  CODE(KRB5KRB_AP_ERR_SKEW);
  CODE(KRB5KRB_ERR_RESPONSE_TOO_BIG);
  CODE(KRB5KDC_ERR_SVC_UNAVAILABLE);
  CODE(KRB5_KDCREP_MODIFIED);
  CODE(KRB5_KT_NOTFOUND);
  CODE(KRB5_KT_KVNONOTFOUND);
  CODE(KRB5_PREAUTH_FAILED);
  CODE(KRB5_GET_IN_TKT_LOOP);
  CODE(KRB5KRB_AP_ERR_TKT_INVALID);
  CODE(KRB5KRB_AP_ERR_TKT_NYV);
  CODE(KRB5KRB_AP_ERR_TKT_EXPIRED);
  CODE(KRB5_CONFIG_ETYPE_NOSUPP);
  CODE(KRB5_PROG_ETYPE_NOSUPP);
#undef CODE
  return c;
}

// Core dumps go off as the addon loads, before the process has held any password.
Napi::Object CoreDumps(Napi::Env env) {
  saslgate::CoreDumpState s = saslgate::DisableCoreDumps();
  Napi::Object o = Napi::Object::New(env);
  o.Set("dumpable", Napi::Number::New(env, s.dumpable));
  o.Set("softLimit", Napi::Number::New(env, static_cast<double>(s.soft_limit)));
  o.Set("hardLimit", Napi::Number::New(env, static_cast<double>(s.hard_limit)));
  o.Set("error", s.error.empty() ? env.Null() : Napi::String::New(env, s.error));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("coreDumps", CoreDumps(env));
  exports.Set("Session", saslgate::Session::Init(env));
  exports.Set("configure", Napi::Function::New(env, Configure));
  exports.Set("hostServicePrincipal", Napi::Function::New(env, HostServicePrincipal));
  exports.Set("codes", Codes(env));
  exports.Set("stepFlagContinue", Napi::Number::New(env, KRB5_INIT_CREDS_STEP_FLAG_CONTINUE));
  return exports;
}

}  // namespace

NODE_API_MODULE(saslgate_krb5, Init)
