"""Pages for people: create and revoke personal API tokens, and read the API reference."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask_login import current_user

from app.api.forms import RevokeForm, TokenForm
from app.api.tokens import create_token, revoke_token, user_tokens
from app.auth.decorators import requires

bp = Blueprint("api_ui", __name__)


def _page(form: TokenForm, created: str | None = None, status: int = 200):
    response = make_response(
        render_template(
            "api/tokens.html",
            form=form,
            revoke_form=RevokeForm(),
            tokens=user_tokens(current_user),
            created=created,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/account/tokens")
@requires("view")
def tokens():
    return _page(TokenForm(formdata=None))


@bp.post("/account/tokens")
@requires("view")
def create():
    form = TokenForm()
    if not form.validate():
        flash("The token needs a name; nothing was created.", "error")
        return _page(form, status=400)
    _, plaintext = create_token(current_user, form.name.data)
    flash("Token created. Copy it now: it is shown only once.", "success")
    return _page(TokenForm(formdata=None), created=plaintext, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke")
@requires("view")
def revoke(token_id: int):
    if not RevokeForm().validate():
        abort(400)
    row = revoke_token(current_user, token_id)
    if row is None:
        abort(404)
    flash(f"Token '{row.name}' revoked; it no longer works.", "success")
    return redirect(url_for("api_ui.tokens"))


@bp.get("/api/docs")
@requires("view")
def docs():
    return render_template("api/docs.html")
