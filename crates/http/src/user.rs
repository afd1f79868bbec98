//! The SealTalk user API (document 003) under `/user`: codes, sign-up, login, sessions, profile.

use actix_web::{web, HttpRequest};
use kith_domain::ids::UserId;
use kith_domain::phone::Phone;
use kith_domain::ports::{Privacy, UserProfile};
use kith_domain::values::{ImageUri, Nickname, Password};
use kith_domain::DomainError;
use serde::{Deserialize, Serialize};

use crate::common::{client_ip, Authed, Loose};
use crate::sealtalk::{self, ok, ok_result, SealResult, SealTalk};
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
            .route("/send_code", web::post().to(send_code))
            .route("/verify_code", web::post().to(verify_code))
            .route(
                "/check_phone_available",
                web::post().to(check_phone_available),
            )
            .route("/register", web::post().to(register))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/reset_password", web::post().to(reset_password))
            .route("/change_password", web::post().to(change_password))
            .route("/set_nickname", web::post().to(set_nickname))
            .route("/set_portrait_uri", web::post().to(set_portrait_uri))
            .route("/set_privacy", web::post().to(set_privacy))
            .route("/privacy", web::get().to(privacy))
            .route("/set_profile", web::post().to(set_profile))
            .route("/find/{region}/{phone}", web::route().to(find))
            .route("/{id}", web::route().to(get_user)),
    );
}

/// `region` plus `phone`, as numbers or strings.
#[derive(Debug, Deserialize)]
pub struct PhoneBody {
    region: Loose,
    phone: Loose,
}

impl PhoneBody {
    fn phone(&self) -> Result<Phone, DomainError> {
        Phone::parse(&self.region.text(), &self.phone.text())
    }
}

/// The public view of a user in this API.
#[derive(Debug, Serialize)]
pub struct UserView {
    id: String,
    nickname: String,
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

impl From<UserProfile> for UserView {
    fn from(u: UserProfile) -> Self {
        Self {
            id: u.id.to_string(),
            nickname: u.nickname,
            portrait_uri: u.portrait_uri,
        }
    }
}

/// `send_code`'s body: the phone, and a solved image captcha when one is needed.
#[derive(Debug, Deserialize)]
struct SendCodeBody {
    #[serde(flatten)]
    phone: PhoneBody,
    #[serde(rename = "verifyId")]
    verify_id: Option<String>,
    #[serde(rename = "verifyCode")]
    verify_code: Option<Loose>,
}

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

#[derive(Debug, Deserialize)]
struct VerifyBody {
    #[serde(flatten)]
    phone: PhoneBody,
    code: Loose,
}

async fn verify_code(state: web::Data<AppState>, body: web::Json<VerifyBody>) -> SealResult {
    let phone = body.phone.phone()?;
    let code = match &body.code {
        // A code sent as a number has lost its leading zeros.
        Loose::Number(n) => format!("{:0>6}", n.to_string()),
        Loose::Text(s) => s.clone(),
    };
    let token = state.accounts.verify_code(&phone, &code).await?;
    Ok(ok_result(
        serde_json::json!({"verification_token": token.expose()}),
    ))
}

async fn check_phone_available(
    state: web::Data<AppState>,
    body: web::Json<PhoneBody>,
) -> SealResult {
    let phone = body.phone()?;
    Ok(ok_result(
        state.accounts.check_phone_available(&phone).await?,
    ))
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    nickname: String,
    password: String,
    verification_token: String,
}

async fn register(state: web::Data<AppState>, body: web::Json<RegisterBody>) -> SealResult {
    let body = body.into_inner();
    let nickname = Nickname::new(body.nickname)?;
    let password = Password::new_secret("password", body.password)?;
    let li = state
        .accounts
        .register(nickname, password, &body.verification_token)
        .await?;
    let mut res = ok_result(serde_json::json!({"id": li.user_id.to_string()}));
    res.add_cookie(&state.cookie.session_cookie(li.token.expose()))
        .map_err(|e| DomainError::Internal(format!("cookie: {e}")))?;
    Ok(res)
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    #[serde(flatten)]
    phone: PhoneBody,
    password: String,
}

async fn login(state: web::Data<AppState>, body: web::Json<LoginBody>) -> SealResult {
    let phone = body.phone.phone()?;
    // Only the shape is checked: an old password may predate today's rules.
    let password = Password::parse("password", body.password.clone())?;
    let li = state.accounts.login(&phone, password.expose()).await?;
    let mut res = ok_result(serde_json::json!({
        "id": li.user_id.to_string(),
        "token": li.token.expose(),
    }));
    res.add_cookie(&state.cookie.session_cookie(li.token.expose()))
        .map_err(|e| DomainError::Internal(format!("cookie: {e}")))?;
    Ok(res)
}

async fn logout(state: web::Data<AppState>, me: Me) -> SealResult {
    state.accounts.logout(&me.caller).await?;
    let mut res = ok();
    res.add_removal_cookie(&state.cookie.clear_cookie())
        .map_err(|e| DomainError::Internal(format!("cookie: {e}")))?;
    Ok(res)
}

#[derive(Debug, Deserialize)]
struct ResetBody {
    password: String,
    verification_token: String,
}

async fn reset_password(state: web::Data<AppState>, body: web::Json<ResetBody>) -> SealResult {
    let body = body.into_inner();
    let password = Password::new_secret("password", body.password)?;
    state
        .accounts
        .reset_password(password, &body.verification_token)
        .await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct ChangePasswordBody {
    #[serde(rename = "oldPassword")]
    old_password: String,
    #[serde(rename = "newPassword")]
    new_password: String,
}

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

#[derive(Debug, Deserialize)]
struct NicknameBody {
    nickname: String,
}

async fn set_nickname(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<NicknameBody>,
) -> SealResult {
    let nickname = Nickname::new(body.into_inner().nickname)?;
    state.accounts.set_nickname(&me.caller, nickname).await?;
    Ok(ok())
}

#[derive(Debug, Deserialize)]
struct PortraitBody {
    #[serde(rename = "portraitUri")]
    portrait_uri: String,
}

async fn set_portrait_uri(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<PortraitBody>,
) -> SealResult {
    let uri = ImageUri::new("portraitUri", body.into_inner().portrait_uri)?;
    state.accounts.set_portrait_uri(&me.caller, uri).await?;
    Ok(ok())
}

async fn find(
    state: web::Data<AppState>,
    _me: Me,
    path: web::Path<(String, String)>,
) -> SealResult {
    let (region, phone) = path.into_inner();
    let phone = Phone::parse(&region, &phone)?;
    let user = state.accounts.find_user(&phone).await?;
    Ok(ok_result(UserView::from(user)))
}

async fn get_user(state: web::Data<AppState>, _me: Me, path: web::Path<String>) -> SealResult {
    let id = UserId::parse(&path.into_inner())?;
    let user = state.accounts.get_user(id).await?;
    Ok(ok_result(UserView::from(user)))
}

/// Kith's privacy call (the documents are silent): every field optional, the rest kept.
#[derive(Debug, Deserialize)]
struct PrivacyBody {
    show_user_name: Option<bool>,
    show_age: Option<bool>,
    show_gender: Option<bool>,
    friend_verification: Option<bool>,
    findable_by_phone: Option<bool>,
    allow_group_invites: Option<bool>,
}

fn privacy_json(p: Privacy) -> serde_json::Value {
    serde_json::json!({
        "show_user_name": p.show_user_name,
        "show_age": p.show_age,
        "show_gender": p.show_gender,
        "friend_verification": p.friend_verification,
        "findable_by_phone": p.findable_by_phone,
        "allow_group_invites": p.allow_group_invites,
    })
}

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

async fn privacy(state: web::Data<AppState>, me: Me) -> SealResult {
    let user = state.accounts.get_user(me.caller.user_id).await?;
    Ok(ok_result(privacy_json(user.privacy)))
}

/// Absent leaves a field as it is; `null` clears it.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Debug, Deserialize)]
struct ProfileBody {
    #[serde(default, deserialize_with = "present")]
    user_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    gender: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    birth_date: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

async fn set_profile(
    state: web::Data<AppState>,
    me: Me,
    body: web::Json<ProfileBody>,
) -> SealResult {
    let b = body.into_inner();
    state
        .accounts
        .set_details(&me.caller, b.user_name, b.gender, b.birth_date, b.email)
        .await?;
    Ok(ok())
}
