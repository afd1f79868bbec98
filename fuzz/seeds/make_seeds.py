#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/seeds/<target>/) from the calls of the five API documents in
/work/shared/specs, with the fixture markers of src/lib.rs (@A @B @C users, @K contact, @T tag,
@G group, @S A's session token). Re-run after changing the request format in src/lib.rs."""
import hashlib, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
G, P, PUT, D = 0, 1, 2, 3

def req(method, prefix, tail="", query="", body=None, flags=0):
    b = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    return bytes([method, prefix, flags]) + tail.encode() + b"\n" + query.encode() + b"\n" + (b or b"")

# Bodies and paths follow the examples of each document.
SEEDS = {
    "api_contacts_v1": [  # prefix 0: /api/v1/contact
        req(G, 0, "", "limit=20&cursor="), req(G, 0, "/conversation", "limit=2"),
        req(P, 0, "/batch_upload", "", [{"tel": "+8613912345678", "display_name": "Li"},
                                        {"tel": "18012345678"}]),
        req(G, 0, "/@B"), req(P, 0, "/@B", "", {"display_name": "Bobby"}),
        req(P, 0, "/@B/follow"), req(P, 0, "/@C/unfollow"), req(P, 0, "/@B/star"),
        req(P, 0, "/@B/unstar"), req(P, 0, "/@C/block"), req(P, 0, "/@C/unblock"),
        req(P, 0, "/@B/conversation/sticky"), req(P, 0, "/@B/conversation/archive"),
        req(G, 0, "/@B", flags=2),
    ],
    "api_friends": [  # prefixes 0 /friends, 1 /follows, 2 /blocks
        req(G, 0, "", "limit=10"), req(P, 0, "/request", "", {"requested_user_id": int(0), "resend": True}),
        req(P, 0, "/request", "", b'{"requested_user_id": @C, "resend": false}'),
        req(G, 0, "/request"), req(G, 0, "/request_sent", "cursor=abc&limit=1"),
        req(P, 0, "/accept", "", {"friend_request_id": 1}), req(P, 0, "/ignore", "", {"friend_request_id": 1}),
        req(P, 0, "/withdraw", "", {"friend_request_id": 1}), req(G, 0, "/sync", "cursor=0"),
        req(D, 0, "/@B"), req(P, 1, "", "", b'{"followee_id": @C}'),
        req(G, 1, "/@A/follower"), req(G, 1, "/@B/followee", "limit=5"), req(D, 1, "/@C"),
        req(P, 2, "", "", b'{"user_id": @C}'), req(G, 2, ""), req(D, 2, "/@C"),
    ],
    "api_addressbook": [  # prefixes 0 /api/v2/contact, 1 /contacts, 2 /tag, 3 /tags, 4 /api/v2
        req(P, 0, "", "", {"name": "Cai", "numbers": [{"type": "Company", "number": "17314141431"}],
                           "emails": [{"type": "Company", "email": "cai@example.com"}],
                           "tag_ids": ["@T"], "doc_type": "contact"}),
        req(G, 0, "/@K"), req(PUT, 0, "/@K", "", {"_rev": "1-abc", "name": "Caiwei", "tag_ids": []}),
        req(D, 0, "/@K", "rev=1-abc"), req(G, 1, "", "keyword=cai&items=10&currentpage=1"),
        req(G, 1, "", "keyword=1731&cursor=x"),
        req(P, 1, "/batch", "", {"ops": [{"op": "create", "doc": {"name": "N"}},
                                         {"op": "update", "id": "@K", "_rev": "1-x", "doc": {"name": "M"}},
                                         {"op": "delete", "id": "@K"}]}),
        req(P, 1, "/import", "", b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Li\r\nTEL;TYPE=cell:+86 139 1234 5678\r\n"
            b"EMAIL:li@example.com\r\nCATEGORIES:Family,Work\r\nNOTE:hi\\, there\r\nEND:VCARD\r\n", flags=8),
        req(G, 1, "/export.vcf"), req(G, 1, "/export.csv"),
        req(P, 2, "", "", {"name": "Family"}), req(G, 3, ""), req(PUT, 2, "/@T", "", {"name": "Kin"}),
        req(D, 2, "/@T"),
    ],
    "api_sealtalk_user": [  # prefixes 0 /user, 1 /group
        req(P, 0, "/send_code", "", {"region": "86", "phone": "13912345678"}),
        req(P, 0, "/send_code", "", {"region": 86, "phone": 13912345678, "verifyId": "x", "verifyCode": 1234}),
        req(P, 0, "/verify_code", "", {"region": "86", "phone": "13912345678", "code": "123456"}),
        req(P, 0, "/check_phone_available", "", {"region": "86", "phone": "13900000001"}),
        req(P, 0, "/register", "", {"nickname": "Tom", "password": "P@ssw0rd", "verification_token": "@S"}),
        req(P, 0, "/login", "", {"region": "86", "phone": "13900000001", "password": "kith-Secret1"}),
        req(P, 0, "/logout"), req(P, 0, "/reset_password", "", {"password": "P@ssw0rd2", "verification_token": "0"}),
        req(P, 0, "/change_password", "", {"oldPassword": "kith-Secret1", "newPassword": "kith-Secret2"}),
        req(P, 0, "/set_nickname", "", {"nickname": "Tom"}),
        req(P, 0, "/set_portrait_uri", "", {"portraitUri": "http://test.com/user/abc123.jpg"}),
        req(P, 0, "/set_privacy", "", {"show_user_name": True, "findable_by_phone": False}),
        req(G, 0, "/privacy"), req(P, 0, "/set_profile", "", {"user_name": "tom", "gender": None}),
        req(G, 0, "/find/86/13900000002"), req(G, 0, "/@B"), req(G, 0, "/blacklist"),
        req(P, 0, "/add_to_blacklist", "", {"friendId": "@C"}),
        req(P, 0, "/remove_from_blacklist", "", {"friendId": "@C"}),
        req(P, 0, "/get_token"), req(P, 0, "/get_image_token"), req(P, 0, "/get_sms_img_code"),
        req(G, 0, "/sync/0"), req(P, 0, "/sync/1700000000000"), req(G, 0, "/groups"),
        req(P, 1, "/create", "", {"name": "Team", "memberIds": ["@B"]}),
        req(P, 1, "/add", "", {"groupId": "@G", "memberIds": ["@C"]}),
        req(P, 1, "/kick", "", {"groupId": "@G", "memberIds": ["@B"]}),
        req(P, 1, "/quit", "", {"groupId": "@G"}), req(P, 1, "/dismiss", "", {"groupId": "@G"}),
        req(P, 1, "/transfer", "", {"groupId": "@G", "userId": "@B"}),
        req(P, 1, "/rename", "", {"groupId": "@G", "name": "Crew"}),
        req(P, 1, "/set_display_name", "", {"groupId": "@G", "displayName": "boss"}),
        req(P, 1, "/set_portrait_uri", "", {"groupId": "@G", "portraitUri": "https://x.y/p.png"}),
        req(P, 1, "/set_bulletin", "", {"groupId": "@G", "bulletin": "hello"}),
        req(G, 1, "/get_bulletin", "groupId=@G"),
        req(P, 1, "/set_manager", "", {"groupId": "@G", "memberIds": ["@B"]}),
        req(P, 1, "/remove_manager", "", {"groupId": "@G", "memberIds": ["@B"]}),
        req(G, 1, "/@G/members"), req(G, 1, "/@G"),
    ],
    "api_sealtalk_friendship": [  # prefix 0: /friendship
        req(P, 0, "/invite", "", {"friendId": "@C", "message": "hi"}),
        req(P, 0, "/agree", "", {"friendId": "@B"}), req(P, 0, "/ignore", "", {"friendId": "@C"}),
        req(P, 0, "/delete", "", {"friendId": "@B"}),
        req(P, 0, "/batch_delete", "", {"friendIds": ["@B", "@C"]}),
        req(P, 0, "/set_display_name", "", {"friendId": "@B", "displayName": "Bobby"}),
        req(P, 0, "/set_friend_description", "", {"friendId": "@B", "displayName": "B", "region": "86",
                                                  "phone": "13912345678", "description": "d",
                                                  "imageUri": "http://x.com/a.png"}),
        req(P, 0, "/get_friend_description", "", {"friendId": "@B"}),
        req(P, 0, "/get_contacts_info", "", {"contactList": ["13900000002", "+8613900000003"]}),
        req(G, 0, "/all", "limit=10&cursor="), req(G, 0, "/@B/profile"),
    ],
    "session": [
        b"\x01Bearer @S", b"\x01bearer   @S  ", b"\x02\nkith_session=@S", b"\x03Basic abc\nkith_session=@S",
        b"\x02\nother=1; kith_session=@S; x=y", b"\x01Bearer " + b"0" * 64, b"\x00",
    ],
    "phone": [
        b"86\n13912345678", b"+86\n139-1234-5678", b"86\n+86 139 1234 5678", b"1\n008618012345678",
        b"1\n(415) 555-2671", b"44\n07400 123456", b"+8613912345678", b"225\n0701234567",
        b"39\n3123456789", b"7\n9123456789",
        b"1\n00+8810153-567728",  # found by the fuzzer: a national number with a leading zero
    ],
    "vcard": [
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Li Lei\r\nN:Li;Lei;;;\r\nTEL;TYPE=\"cell,voice\":+86 139 1234 5678\r\n"
        b"EMAIL;TYPE=work:li@example.com\r\nCATEGORIES:Family,Work\r\nNOTE:line1\\nline2\\, ok\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\nVERSION:3.0\nN:Smith;John;Q;Dr.;Jr.\nTEL;HOME;VOICE:tel:+1-415-555-2671\nitem1.EMAIL;type=INTERNET:j@x.org\n"
        b"NOTE:folded\n  line\nEND:VCARD\nBEGIN:VCARD\nVERSION:3.0\nFN:Two\nEND:VCARD\n",
        b"\xef\xbb\xbfBEGIN:VCARD\r\nVERSION:4.0\r\nFN:\xe5\x90\x8d\xe5\xad\x97\r\nTEL;VALUE=uri;TYPE=\"x;y\":tel:123\r\nEND:VCARD\r\n",
        # Found by the fuzzer (docs/reliability.md, "Fuzzing"): each broke the round trip.
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nTEL;VALUE=uri;TYPE=\"x;y\">tel:123\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\nVERSION:3.0\nFN:Two\nTEL;HOME,,VOICE:;;;;15-5553.0\nEND:VCARD\n",
        b"BEGIN:VCARD\r\nFN:x\r\nNOTE:a\rb\\\rc\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\nFN:x\nEMAIL:mailto:mailto:me@example.com\nEND:VCARD\n",
    ],
}

for target, seeds in SEEDS.items():
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        with open(os.path.join(d, hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)
print("seeds written:", {t: len(s) for t, s in SEEDS.items()})
