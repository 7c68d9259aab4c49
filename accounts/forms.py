"""Forms behind the sign-in, sign-up, waitlist and password-reset pages."""

from django import forms


class SignInForm(forms.Form):
    username = forms.CharField(label="Username or email", max_length=254,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SignUpForm(forms.Form):
    username = forms.RegexField(r"^[\w.@+-]+\Z", max_length=150, label="Username",
                                error_messages={"invalid": "Use letters, digits and @ . + - _ only."})
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    invite_token = forms.CharField(required=False, widget=forms.HiddenInput)


class WaitlistForm(forms.Form):
    email = forms.EmailField(label="Email")
    name = forms.CharField(label="Name", required=False, max_length=150)
    note = forms.CharField(label="Anything we should know?", required=False, max_length=1000,
                           widget=forms.Textarea(attrs={"rows": 3}))


class PasswordResetForm(forms.Form):
    email = forms.EmailField(label="Email")
