//! SealTalk's token and captcha calls under `/user` (document 003): `get_token`, `get_image_token`, `get_sms_img_code` and the captcha images.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, Scope};
use kith_domain::captcha::{CaptchaId, CaptchaSolution};
use kith_domain::tokens::UPLOAD_NOT_CONFIGURED;
use kith_domain::DomainError;
use serde_json::json;

use crate::common::{client_ip, Authed, Loose};
use crate::sealtalk::{ok_result, SealResult, SealTalk};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Where captcha images are served, below `/user`.
pub const CAPTCHA_IMAGE_PATH: &str = "/sms_img_code";

/// Adds the token and captcha routes to the `/user` scope. Call it before the scope's
/// catch-all `/{id}` route, which would otherwise take `/user/get_token` for a user id.
pub fn routes(scope: Scope) -> Scope {
    scope
        .route("/get_token", web::post().to(get_token))
        .route("/get_image_token", web::post().to(get_image_token))
        .route("/get_sms_img_code", web::post().to(get_sms_img_code))
        .route(
            &format!("{CAPTCHA_IMAGE_PATH}/{{verify_id}}.png"),
            web::get().to(captcha_image),
        )
}

/// The captcha fields of a `send_code` body: both absent (or blank) is no solution, one
/// without the other is a 400.
pub fn captcha_solution(
    verify_id: Option<&str>,
    verify_code: Option<&Loose>,
) -> Result<Option<CaptchaSolution>, DomainError> {
    let verify_id = verify_id.map(str::trim).filter(|s| !s.is_empty());
    let verify_code = verify_code
        .map(Loose::text)
        .filter(|s| !s.trim().is_empty());
    match (verify_id, verify_code) {
        (None, None) => Ok(None),
        (Some(id), Some(code)) => CaptchaSolution::new(id, &code).map(Some),
        (Some(_), None) => Err(DomainError::invalid(
            "verifyCode",
            "must be sent with verifyId",
        )),
        (None, Some(_)) => Err(DomainError::invalid(
            "verifyId",
            "must be sent with verifyCode",
        )),
    }
}

async fn get_token(state: web::Data<AppState>, me: Me) -> SealResult {
    let t = state.tokens.im_token(&me.caller).await?;
    Ok(ok_result(json!({
        "userId": t.user_id.to_string(),
        "token": t.token,
    })))
}

async fn get_image_token(state: web::Data<AppState>, me: Me) -> SealResult {
    match state.tokens.upload_token(&me.caller).await {
        Ok(t) => Ok(ok_result(json!({
            "target": t.target,
            "domain": t.domain,
            "token": t.token,
        }))),
        // Not a passing outage: say so rather than "try again later".
        Err(DomainError::Unavailable(cause)) if cause == UPLOAD_NOT_CONFIGURED => {
            Ok(HttpResponse::ServiceUnavailable().json(json!({
                "code": 503,
                "message": "image upload storage is not configured on this server",
            })))
        }
        Err(e) => Err(e.into()),
    }
}

async fn get_sms_img_code(state: web::Data<AppState>, req: HttpRequest) -> SealResult {
    let issued = state.accounts.issue_captcha(&client_ip(&req)).await?;
    let base = match &state.public_url {
        Some(url) => url.clone(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    Ok(ok_result(json!({
        "url": format!("{base}/user{CAPTCHA_IMAGE_PATH}/{}.png", issued.id),
        "verifyId": issued.id.as_str(),
    })))
}

async fn captcha_image(state: web::Data<AppState>, path: web::Path<String>) -> SealResult {
    let id = CaptchaId::parse(&path.into_inner())?;
    let png = state.accounts.captcha_image(&id).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        // Single use and short-lived: no cache may keep or share it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(png))
}
