"""Sign-in form."""

from flask_wtf import FlaskForm
from wtforms.validators import DataRequired, Length

from app.wizard.fields import SecretField, TextField


class LoginForm(FlaskForm):
    """Username and password."""

    username = TextField("Username", [DataRequired(), Length(max=64)])
    password = SecretField("Password", [DataRequired(), Length(max=1024)])
