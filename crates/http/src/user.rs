//! The SealTalk user API (document 003) under `/user`: codes, sign-up, login, sessions, profile.

use actix_web::{web, HttpRequest};
use kith_domain::ids::UserId;
use kith_domain::phone::Phone;
use kith_domain::ports::{Privacy, UserProfile};
use kith_domain::values::{ImageUri, Nickname, Password};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};

use crate::common::{client_ip, Authed, Loose};
use crate::sealtalk::{
    self, get, get_post, ok, ok_result, post, OpenFaults, SealAnswer, SealDone, SealFault,
    SealResult, SealTalk, SessionFaults, StringOrNumber,
};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Mounts `/user/...`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let scope = crate::friendship::blacklist_routes(web::scope("/user"));
    // Before the catch-all `/{id}` below.
    let scope = crate::user_tokens::routes(scope);
    let scope = crate::sync::routes(scope);
    let scope = crate::group::user_routes(scope);
    cfg.service(
        scope
            .app_data(sealtalk::json_config())
            .app_data(sealtalk::path_config())
            .app_data(sealtalk::query_config())
            .service(post("/send_code", send_code))
            .service(post("/verify_code", verify_code))
            .service(post("/check_phone_available", check_phone_available))
            .service(post("/register", register))
            .service(post("/login", login))
            .service(post("/logout", logout))
            .service(post("/reset_password", reset_password))
            .service(post("/change_password", change_password))
            .service(post("/set_nickname", set_nickname))
            .service(post("/set_portrait_uri", set_portrait_uri))
            .service(post("/set_privacy", set_privacy))
            .service(get("/privacy", privacy))
            .service(post("/set_profile", set_profile))
            // The document says POST; GET reads better and is accepted too.
            .service(get_post("/find/{region}/{phone}", find))
            .service(get_post("/{id}", get_user)),
    );
}

/// `region` plus `phone`, as numbers or strings.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PhoneBody {
    /// International dialling code, e.g. 86.
    #[schema(value_type = StringOrNumber, example = 86)]
    region: Loose,
    /// The national number.
    #[schema(value_type = StringOrNumber, example = 13912345678_u64)]
    phone: Loose,
}

impl PhoneBody {
    fn phone(&self) -> Result<Phone, DomainError> {
        Phone::parse(&self.region.text(), &self.phone.text())
    }
}

/// The public view of a user in this API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// The user id, in decimal.
    id: String,
    /// The user's nickname.
    nickname: String,
    /// The user's portrait URL, or "".
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

impl From<&UserProfile> for UserView {
    fn from(u: &UserProfile) -> Self {
        Self {
            id: u.id.to_string(),
            nickname: u.nickname.clone(),
            portrait_uri: u.portrait_uri.clone(),
        }
    }
}

/// `send_code`'s body: the phone, and a solved image captcha when one is needed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SendCodeBody {
    #[serde(flatten)]
    phone: PhoneBody,
    /// The `verifyId` from `/user/get_sms_img_code`, when a captcha is required (code 6000).
    #[serde(rename = "verifyId")]
    verify_id: Option<String>,
    /// The text read from that captcha image.
    #[serde(rename = "verifyCode")]
    #[schema(value_type = Option<StringOrNumber>)]
    verify_code: Option<Loose>,
}

/// Sends a verification code by SMS.
#[utoipa::path(
    post,
    path = "/user/send_code",
    tag = "003 SealTalk user",
    request_body(content = SendCodeBody, example = json!({"region": 86, "phone": 13912345678_u64})),
    responses(
        (status = 200,
         description = "`{\"code\": 200}` sent; 5000 over the frequency limit (with \
                        `Retry-After`); 6000 solve an image captcha first; 6001 wrong captcha",
         body = SealDone,
         example = json!({"code": 200})),
        OpenFaults,
    )
)]
async fn send_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SendCodeBody>,
) -> SealResult {
    let phone = body.phone.phone()?;
    let captcha =
        crate::user_tokens::captcha_solution(body.verify_id.as_deref(), body.verify_code.as_ref())?;
    state
        .accounts
        .send_code(&phone, &client_ip(&req), captcha.as_ref())
        .await?;
    Ok(ok())
}

/// `verify_code`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyBody {
    #[serde(flatten)]
    phone: PhoneBody,
    /// The code received by SMS.
    #[schema(value_type = StringOrNumber, example = "123456")]
    code: Loose,
}

/// `verify_code`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationToken {
    /// Proof of the phone for `register` and `reset_password`.
    verification_token: String,
}

/// Checks an SMS code and hands out a verification token.
#[utoipa::path(
    post,
    path = "/user/verify_code",
    tag = "003 SealTalk user",
    request_body(content = VerifyBody,
        example = json!({"region": 86, "phone": 13912345678_u64, "code": "123456"})),
    responses(
        (status = 200,
         description = "the token; 1000 wrong code; 2000 expired code; 5000 over the frequency limit",
         body = SealAnswer<VerificationToken>,
         example = json!({"code": 200, "result": {
             "verification_token": "75dd0f90-9b0d-11e5-803f-59b82644bc50"}})),
        OpenFaults,
    )
)]
async fn verify_code(state: web::Data<AppState>, body: web::Json<VerifyBody>) -> SealResult {
    let phone = body.phone.phone()?;
    let code = match &body.code {
        // A code sent as a number has lost its leading zeros.
        Loose::Number(n) => format!("{:0>6}", n.to_string()),
        Loose::Text(s) => s.clone(),
    };
    let token = state.accounts.verify_code(&phone, &code).await?;
    Ok(ok_result(VerificationToken {
        verification_token: token.expose().to_owned(),
    }))
}

/// Tells whether a phone may still register.
#[utoipa::path(
    post,
    path = "/user/check_phone_available",
    tag = "003 SealTalk user",
    request_body(content = PhoneBody, example = json!({"region": 86, "phone": 13912345678_u64})),
    responses(
        (status = 200,
         description = "`true`: the phone is free; `false`: it is taken",
         body = SealAnswer<bool>,
         example = json!({"code": 200, "result": true})),
        OpenFaults,
    )
)]
async fn check_phone_available(
    state: web::Data<AppState>,
    body: web::Json<PhoneBody>,
) -> SealResult {
    let phone = body.phone()?;
    Ok(ok_result(
        state.accounts.check_phone_available(&phone).await?,
    ))
}

/// `register`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    /// 1 to 32 bytes, not blank.
    #[schema(min_length = 1, max_length = 32, pattern = r"\S")]
    nickname: String,
    /// 6 to 20 bytes, no spaces, not a common password.
    #[schema(min_length = 6, max_length = 20, pattern = r"^\S+$")]
    password: String,
    /// From `/user/verify_code`.
    verification_token: String,
}

/// `register`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewUser {
    /// The new user's id.
    id: String,
}

/// `login`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResult {
    /// The user's id.
    id: String,
    /// The session value: the same as the cookie, usable as `Authorization: Bearer`.
    token: String,
}

/// Registers a user with a verified phone, and logs them in.
#[utoipa::path(
    post,
    path = "/user/register",
    tag = "003 SealTalk user",
    request_body(content = RegisterBody, example = json!({
        "nickname": "Tom", "password": "P@ssw0rd",
        "verification_token": "75dd0f90-9b0d-11e5-803f-59b82644bc50"})),
    responses(
        (status = 200,
         description = "registered and logged in",
         body = SealAnswer<NewUser>,
         headers(("Set-Cookie" = String, description = "The session cookie")),
         example = json!({"code": 200, "result": {"id": "4503599627370497"}})),
        (status = 404, body = SealFault, description = "unknown or used verification_token"),
        OpenFaults,
    )
)]
async fn register(state: web::Data<AppState>, body: web::Json<RegisterBody>) -> SealResult {
    let body = body.into_inner();
    let nickname = Nickname::new(body.nickname)?;
    let password = Password::new_secret("password", body.password)?;
    let li = state
        .accounts
        .register(nickname, password, &body.verification_token)
        .await?;
    let mut res = ok_result(NewUser {
        id: li.user_id.to_string(),
    });
    res.add_cookie(&state.cookie.session_cookie(li.token.expose()))
        .map_err(|e| DomainError::Internal(format!("cookie: {e}")))?;
    Ok(res)
}

/// `login`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[serde(flatten)]
    phone: PhoneBody,
    /// The password.
    #[schema(min_length = 6, max_length = 20, pattern = r"^\S+$")]
    password: String,
}

/// Logs in with phone and password: sets the session cookie and returns the same value.
#[utoipa::path(
    post,
    path = "/user/login",
    tag = "003 SealTalk user",
    request_body(content = LoginBody,
        example = json!({"region": 86, "phone": 13912345678_u64, "password": "P@ssw0rd"})),
    responses(
        (status = 200,
         description = "logged in; 1000 wrong phone or password; 3000 locked after repeated \
                        failures (with `Retry-After`); 5000 over the frequency limit",
         body = SealAnswer<LoginResult>,
         headers(("Set-Cookie" = String, description = "The session cookie")),
         example = json!({"code": 200, "result": {"id": "4503599627370497",
             "token": "C4nEgo1TK0Ly6zUr/+Hqqu/XQOlLIWwcquFNlNhLydOQwZlSzscUQQfhEU6nFWJ+yPKQhMU6qP5XXBgOWA1AhckFbQ/t+nm4"}})),
        OpenFaults,
    )
)]
async fn login(state: web::Data<AppState>, body: web::Json<LoginBody>) -> SealResult {
    let phone = body.phone.phone()?;
    // Only the shape is checked: an old password may predate today's rules.
    let password = Password::parse("password", body.password.clone())?;
    let li = state.accounts.login(&phone, password.expose()).await?;
    let mut res = ok_result(LoginResult {
        id: li.user_id.to_string(),
        token: li.token.expose().to_owned(),
    });
    res.add_cookie(&state.cookie.session_cookie(li.token.expose()))
        .map_err(|e| DomainError::Internal(format!("cookie: {e}")))?;
    Ok(res)
}

/// Ends the current session and clears the cookie.
#[utoipa::path(
    post,
    path = "/user/logout",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200,
         description = "logged out",
         body = SealDone,
         example = json!({"code": 200})),
        SessionFaults,
    )
)]
async fn logout(state: web::Data<AppState>, me: Me) -> SealResult {
    state.accounts.logout(&me.caller).await?;
    let mut res = ok();
    res.add_removal_cookie(&state.cookie.clear_cookie())
        .map_err(|e| DomainError::Internal(format!("cookie: {e}")))?;
    Ok(res)
}

/// `reset_password`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResetBody {
    /// The new password: 6 to 20 bytes, no spaces, not a common password.
    #[schema(min_length = 6, max_length = 20, pattern = r"^\S+$")]
    password: String,
    /// From `/user/verify_code`.
    verification_token: String,
}

/// Sets a new password with a verified phone.
#[utoipa::path(
    post,
    path = "/user/reset_password",
    tag = "003 SealTalk user",
    request_body(content = ResetBody, example = json!({"password": "P@ssw0rd",
        "verification_token": "75dd0f90-9b0d-11e5-803f-59b82644bc50"})),
    responses(
        (status = 200,
         description = "changed",
         body = SealDone,
         example = json!({"code": 200})),
        (status = 404, body = SealFault, description = "unknown or used verification_token"),
        OpenFaults,
    )
)]
async fn reset_password(state: web::Data<AppState>, body: web::Json<ResetBody>) -> SealResult {
    let body = body.into_inner();
    let password = Password::new_secret("password", body.password)?;
    state
        .accounts
        .reset_password(password, &body.verification_token)
        .await?;
    Ok(ok())
}

/// `change_password`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordBody {
    /// The current password.
    #[serde(rename = "oldPassword")]
    #[schema(min_length = 6, max_length = 20, pattern = r"^\S+$")]
    old_password: String,
    /// The new password: 6 to 20 bytes, no spaces, not a common password.
    #[serde(rename = "newPassword")]
    #[schema(min_length = 6, max_length = 20, pattern = r"^\S+$")]
    new_password: String,
}

/// Changes the password, given the old one.
#[utoipa::path(
    post,
    path = "/user/change_password",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = ChangePasswordBody,
        example = json!({"oldPassword": "P@ssw0rdOld", "newPassword": "P@ssw0rdNew"})),
    responses(
        (status = 200,
         description = "changed; 1000 wrong old password",
         body = SealDone,
         example = json!({"code": 200})),
        SessionFaults,
    )
)]
async fn change_password(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<ChangePasswordBody>,
) -> SealResult {
    let body = body.into_inner();
    let old = Password::parse("oldPassword", body.old_password)?;
    let new = Password::new_secret("newPassword", body.new_password)?;
    state
        .accounts
        .change_password(&me.caller, old.expose(), new)
        .await?;
    Ok(ok())
}

/// `set_nickname`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NicknameBody {
    /// 1 to 32 bytes, not blank.
    #[schema(min_length = 1, max_length = 32, pattern = r"\S")]
    nickname: String,
}

/// Sets the caller's nickname.
#[utoipa::path(
    post,
    path = "/user/set_nickname",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = NicknameBody, example = json!({"nickname": "Tom"})),
    responses(
        (status = 200,
         description = "set",
         body = SealDone,
         example = json!({"code": 200})),
        SessionFaults,
    )
)]
async fn set_nickname(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<NicknameBody>,
) -> SealResult {
    let nickname = Nickname::new(body.into_inner().nickname)?;
    state.accounts.set_nickname(&me.caller, nickname).await?;
    Ok(ok())
}

/// `set_portrait_uri`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PortraitBody {
    /// An http(s) URL of at most 256 characters.
    #[serde(rename = "portraitUri")]
    #[schema(
        max_length = 256,
        pattern = r"^[hH][tT][tT][pP][sS]?://[^/\s\x00-\x1f\x7f-\x9f][^\s\x00-\x1f\x7f-\x9f]*$"
    )]
    portrait_uri: String,
}

/// Sets the caller's portrait URL.
#[utoipa::path(
    post,
    path = "/user/set_portrait_uri",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = PortraitBody,
        example = json!({"portraitUri": "http://test.com/user/abc123.jpg"})),
    responses(
        (status = 200,
         description = "set",
         body = SealDone,
         example = json!({"code": 200})),
        SessionFaults,
    )
)]
async fn set_portrait_uri(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<PortraitBody>,
) -> SealResult {
    let uri = ImageUri::new("portraitUri", body.into_inner().portrait_uri)?;
    state.accounts.set_portrait_uri(&me.caller, uri).await?;
    Ok(ok())
}

/// Finds a user by phone (when that user lets themselves be found).
#[utoipa::path(
    method(post, get),
    path = "/user/find/{region}/{phone}",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("region" = String, Path, description = "International dialling code", example = "86"),
        ("phone" = String, Path, description = "National number", example = "13912345678"),
    ),
    responses(
        (status = 200,
         description = "the user",
         body = SealAnswer<UserView>,
         example = json!({"code": 200, "result": {
            "id": "4503599627370497", "nickname": "Tom",
            "portraitUri": "http://test.com/user/abc123.jpg"}})),
        (status = 404, body = SealFault, description = "no such user"),
        SessionFaults,
    )
)]
async fn find(
    state: web::Data<AppState>,
    _me: Me,
    path: web::Path<(String, String)>,
) -> SealResult {
    let (region, phone) = path.into_inner();
    let phone = Phone::parse(&region, &phone)?;
    let user = state.accounts.find_user(&phone).await?;
    Ok(ok_result(UserView::from(&user)))
}

/// A user's public profile.
#[utoipa::path(
    method(post, get),
    path = "/user/{id}",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "User id", example = "4503599627370497", pattern = r"^[1-9][0-9]{0,15}$")),
    responses(
        (status = 200,
         description = "the user",
         body = SealAnswer<UserView>,
         example = json!({"code": 200, "result": {
            "id": "4503599627370497", "nickname": "Tom",
            "portraitUri": "http://test.com/user/abc123.jpg"}})),
        (status = 404, body = SealFault, description = "no such user"),
        SessionFaults,
    )
)]
async fn get_user(state: web::Data<AppState>, _me: Me, path: web::Path<String>) -> SealResult {
    let id = UserId::parse(&path.into_inner())?;
    let user = state.accounts.profile(id).await?;
    Ok(ok_result(UserView::from(&*user)))
}

/// Kith's privacy call (the documents are silent): every field optional, the rest kept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PrivacyBody {
    show_user_name: Option<bool>,
    show_age: Option<bool>,
    show_gender: Option<bool>,
    friend_verification: Option<bool>,
    findable_by_phone: Option<bool>,
    allow_group_invites: Option<bool>,
}

/// The caller's privacy settings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrivacyView {
    /// Whether others see the user name.
    show_user_name: bool,
    /// Whether others see the age.
    show_age: bool,
    /// Whether others see the gender.
    show_gender: bool,
    /// Whether an invite needs the caller's agreement.
    friend_verification: bool,
    /// Whether `/user/find` finds the caller.
    findable_by_phone: bool,
    /// Whether others may add the caller to groups.
    allow_group_invites: bool,
}

fn privacy_json(p: Privacy) -> PrivacyView {
    PrivacyView {
        show_user_name: p.show_user_name,
        show_age: p.show_age,
        show_gender: p.show_gender,
        friend_verification: p.friend_verification,
        findable_by_phone: p.findable_by_phone,
        allow_group_invites: p.allow_group_invites,
    }
}

/// Changes the privacy settings sent (Kith's addition: the documents are silent).
#[utoipa::path(
    post,
    path = "/user/set_privacy",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = PrivacyBody,
        example = json!({"show_age": false, "findable_by_phone": true})),
    responses(
        (status = 200,
         description = "the settings after the change",
         body = SealAnswer<PrivacyView>,
         example = json!({"code": 200, "result": {"show_user_name": true,
             "show_age": false, "show_gender": true, "friend_verification": true,
             "findable_by_phone": true, "allow_group_invites": true}})),
        SessionFaults,
    )
)]
async fn set_privacy(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<PrivacyBody>,
) -> SealResult {
    let b = body.into_inner();
    let mut p = state.accounts.get_user(me.caller.user_id).await?.privacy;
    let pick = |new: Option<bool>, old: bool| new.unwrap_or(old);
    p = Privacy {
        show_user_name: pick(b.show_user_name, p.show_user_name),
        show_age: pick(b.show_age, p.show_age),
        show_gender: pick(b.show_gender, p.show_gender),
        friend_verification: pick(b.friend_verification, p.friend_verification),
        findable_by_phone: pick(b.findable_by_phone, p.findable_by_phone),
        allow_group_invites: pick(b.allow_group_invites, p.allow_group_invites),
    };
    state.accounts.set_privacy(&me.caller, p).await?;
    Ok(ok_result(privacy_json(p)))
}

/// The caller's privacy settings (Kith's addition).
#[utoipa::path(
    get,
    path = "/user/privacy",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200,
         description = "the settings",
         body = SealAnswer<PrivacyView>,
         example = json!({"code": 200, "result": {"show_user_name": true,
             "show_age": false, "show_gender": true, "friend_verification": true,
             "findable_by_phone": true, "allow_group_invites": true}})),
        SessionFaults,
    )
)]
async fn privacy(state: web::Data<AppState>, me: Me) -> SealResult {
    let user = state.accounts.get_user(me.caller.user_id).await?;
    Ok(ok_result(privacy_json(user.privacy)))
}

/// Absent leaves a field as it is; `null` clears it.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `set_profile`'s body: each field absent is kept, `null` clears it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ProfileBody {
    /// The user name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    user_name: Option<Option<String>>,
    /// The gender, at most 16 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 16)]
    gender: Option<Option<String>>,
    /// Birth date, `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Date)]
    birth_date: Option<Option<String>>,
    /// E-mail address.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
}

/// Sets the profile details sent (Kith's addition).
#[utoipa::path(
    post,
    path = "/user/set_profile",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = ProfileBody,
        example = json!({"user_name": "tom", "gender": "male", "birth_date": "1990-05-17"})),
    responses(
        (status = 200,
         description = "set",
         body = SealDone,
         example = json!({"code": 200})),
        SessionFaults,
    )
)]
async fn set_profile(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<serde_json::Map<String, serde_json::Value>>,
) -> SealResult {
    // Read through a map: serde would also take a JSON array positionally, and `[null, null]`
    // would then clear the user name and gender.
    let b: ProfileBody = serde_json::from_value(serde_json::Value::Object(body.into_inner()))
        .map_err(|e| DomainError::invalid("body", format!("malformed JSON: {e}")))?;
    state
        .accounts
        .set_details(&me.caller, b.user_name, b.gender, b.birth_date, b.email)
        .await?;
    Ok(ok())
}

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        send_code,
        verify_code,
        check_phone_available,
        register,
        login,
        logout,
        reset_password,
        change_password,
        set_nickname,
        set_portrait_uri,
        set_privacy,
        privacy,
        set_profile,
        find,
        get_user
    ))]
    struct Api;
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    doc.merge(sealtalk::openapi());
    doc
}
