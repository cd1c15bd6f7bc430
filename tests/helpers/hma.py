"""Shared by the HMA, Coop and API security tests: requester tokens and clients, pictures and hash lists."""

from __future__ import annotations

from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from demo.content import demo_image
from intake import hashlists
from intake.models import HashList, HashListEntry


def picture(seed: int) -> Image.Image:
    return demo_image(seed, label=f"HMA TEST #{seed}")


def token_of(user) -> str:
    return str(Token.objects.get_or_create(user=user)[0].key)


def client_for(user, *, header: str = "token") -> APIClient:
    client = APIClient()
    if header == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_of(user)}")
    else:
        client.credentials(HTTP_X_API_KEY=token_of(user))
    return client


def make_list(name: str, *images: Image.Image, action: str = HashList.Action.FLAG) -> tuple[HashList, list[int]]:
    hash_list = HashList.objects.create(name=name, label=f"{name} list", action=action)
    ids = []
    for image in images:
        pdq, _ = hashlists.pdq_of(image)
        ids.append(HashListEntry.objects.create(hash_list=hash_list, signal_type="pdq", signal=pdq).pk)
    return hash_list, ids
