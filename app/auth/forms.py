"""Sign-in form."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", [DataRequired(), Length(max=64)])
    password = PasswordField("Password", [DataRequired(), Length(max=1024)])
