//! SealTalk's token and captcha calls under `/user` (document 003): `get_token`, `get_image_token`, `get_sms_img_code` and the captcha images.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, Scope};
use kith_domain::captcha::{CaptchaId, CaptchaSolution};
use kith_domain::DomainError;
use serde::Serialize;

use crate::common::{client_ip, Authed, Loose};
use crate::sealtalk::{
    self, get, ok_result, post, OpenFaults, SealAnswer, SealFault, SealResult, SealTalk,
    SessionFaults,
};
use crate::AppState;

type Me = Authed<SealTalk>;

/// Where captcha images are served, below `/user`.
pub const CAPTCHA_IMAGE_PATH: &str = "/sms_img_code";

/// Adds the token and captcha routes to the `/user` scope. Call it before the scope's
/// catch-all `/{id}` route, which would otherwise take `/user/get_token` for a user id.
pub fn routes(scope: Scope) -> Scope {
    scope
        .service(post("/get_token", get_token))
        .service(post("/get_image_token", get_image_token))
        .service(post("/get_sms_img_code", get_sms_img_code))
        .service(get(
            &format!("{CAPTCHA_IMAGE_PATH}/{{verify_id}}.png"),
            captcha_image,
        ))
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

/// `get_token`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImToken {
    /// The caller's id.
    #[serde(rename = "userId")]
    user_id: String,
    /// The IM token.
    token: String,
}

/// An IM (RongCloud-style) token for the caller.
#[utoipa::path(
    post,
    path = "/user/get_token",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "the token", body = SealAnswer<ImToken>,
         example = json!({"code": 200, "result": {"userId": "4503599627370497",
            "token": "C4nEgo1TK0Ly6zUr/+Hqqu/XQOlLIWwcquFNlNhLydOQwZlSzscUQQfhEU6nFWJ+yPKQhMU6qP5XXBgOWA1AhckFbQ/t+nm4"}})),
        SessionFaults,
    )
)]
async fn get_token(state: web::Data<AppState>, me: Me) -> SealResult {
    let t = state.tokens.im_token(&me.caller).await?;
    Ok(ok_result(ImToken {
        user_id: t.user_id.to_string(),
        token: t.token,
    }))
}

/// `get_image_token`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadToken {
    /// Storage kind, e.g. `qiniu`.
    target: String,
    /// Domain of the stored images.
    domain: String,
    /// Upload token.
    token: String,
}

/// A cloud storage upload token.
#[utoipa::path(
    post,
    path = "/user/get_image_token",
    tag = "003 SealTalk user",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "the token", body = SealAnswer<UploadToken>,
         example = json!({"code": 200, "result": {"target": "qiniu", "domain": "a.qiniu.com",
            "token": "fsd89feuio3iweoifds"}})),
        SessionFaults,
    )
)]
async fn get_image_token(state: web::Data<AppState>, me: Me) -> SealResult {
    let t = state.tokens.upload_token(&me.caller).await?;
    Ok(ok_result(UploadToken {
        target: t.target,
        domain: t.domain,
        token: t.token,
    }))
}

/// `get_sms_img_code`'s result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaptchaIssued {
    /// The captcha image (PNG).
    url: String,
    /// Send it back as `verifyId` with `/user/send_code`.
    #[serde(rename = "verifyId")]
    verify_id: String,
}

/// Issues an image captcha for `send_code`.
#[utoipa::path(
    post,
    path = "/user/get_sms_img_code",
    tag = "003 SealTalk user",
    responses(
        (status = 200, description = "the captcha; 5000 over the frequency limit",
         body = SealAnswer<CaptchaIssued>,
         example = json!({"code": 200, "result": {
            "url": "http://127.0.0.1:8080/user/sms_img_code/fsd89feuio3iweoifds.png",
            "verifyId": "fsd89feuio3iweoifds"}})),
        OpenFaults,
    )
)]
async fn get_sms_img_code(state: web::Data<AppState>, req: HttpRequest) -> SealResult {
    let issued = state.accounts.issue_captcha(&client_ip(&req)).await?;
    let base = match &state.public_url {
        Some(url) => url.clone(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    Ok(ok_result(CaptchaIssued {
        url: format!("{base}/user{CAPTCHA_IMAGE_PATH}/{}.png", issued.id),
        verify_id: issued.id.as_str().to_owned(),
    }))
}

/// A captcha image issued by `get_sms_img_code` (Kith's; the document leaves the URL open).
#[utoipa::path(
    get,
    path = "/user/sms_img_code/{verify_id}.png",
    tag = "003 SealTalk user",
    params(("verify_id" = String, Path, description = "The `verifyId`",
        pattern = "^[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "the PNG image", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "unknown, used or expired captcha", body = SealFault),
        OpenFaults,
    )
)]
async fn captcha_image(state: web::Data<AppState>, path: web::Path<String>) -> SealResult {
    let id = CaptchaId::parse(&path.into_inner())?;
    let png = state.accounts.captcha_image(&id).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        // Single use and short-lived: no cache may keep or share it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(png))
}

/// The token and captcha calls' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(get_token, get_image_token, get_sms_img_code, captcha_image))]
    struct Api;
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    doc.merge(sealtalk::openapi());
    doc
}
