"""RFC 4475 (SIP Torture Test Messages), section 3.1 and a few of 3.3, against parse_message.

The messages are transcribed from the RFC (the long ones built with string code, as the
RFC's own <allOneLine> and <repeat> conventions do). Where the RFC calls a message valid
or "valid but odd", it must parse and its key values come out right; where it says an
element should answer 400 (or discard a response), parse_message must raise. Some cases
are visible only once a URI or name-addr is parsed: those helpers are held to it too.

Leniencies the parser chose, case by case (the RFC allows either answer):
- baddate (3.1.2.12): the Date header is not interpreted, so an unknown time zone passes.
- badbranch (3.2.1): a branch that is only the magic cookie parses; the transaction
  layer decides what to do with it.
- inv2543 (3.4.1): an RFC 2543 request without a branch or Max-Forwards parses.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from voxgate.bridge.sip.message import (
    UNSUPPORTED_VERSION,
    NameAddr,
    Request,
    Response,
    SipUri,
    Via,
    parse_cseq,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from voxgate.errors import SipParseError


def crlf(text: str) -> bytes:
    """The RFC's lines, each ended with CRLF, as UTF-8."""
    return text.replace("\n", "\r\n").encode()


def sdp(ip: str, *, t: str = "0 0") -> str:
    return (
        f"v=0\no=mhandley 29739 7272939 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt={t}\n"
        "m=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n"
    )


# --- 3.1.1 Valid messages --------------------------------------------------------------------

WSINV = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n'
    "  ;\n"
    "  tag = 98asjd8\n"
    "MaX-fOrWaRdS: 0068\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\n"
    "Content-Length   : 150\n"
    "cseq: 0009\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.2;branch=390skdjuw\n"
    "s :\n"
    "NewFangledHeader:   newfangled value\n"
    " continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n"
    "  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n"
    " z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n'
    "      newvalue ;\n"
    "  secondparam ; q = 0.33\n"
    "\n" + sdp("192.0.2.3").replace("c=IN IP4 192.0.2.3", "c=IN IP4 192.0.2.4")
)

UNUSUAL_USER = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
ODD_METHOD = "!interesting-Method0123456789_*+`.%indeed'~"
INTMETH = crlf(
    f"{ODD_METHOD} sip:{UNUSUAL_USER}:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    " SIP/2.0\n"
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
    f'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:{UNUSUAL_USER}@example.com>\n'
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    '"работающий";tag=_token~1\'+`*%!-.\n'
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    f"CSeq: 139122385 {ODD_METHOD}\n"
    "Max-Forwards: 255\n"
    "extensionHeader-!.%*+_`'~:\ufeff大停電\n"
    "Content-Length: 0\n"
    "\n"
)

ESC01 = crlf(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
    "To: sip:%75se%72@example.com\n"
    "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
    "Max-Forwards: 87\n"
    "i: esc01.239409asdfakjkn23onasd0-3234\n"
    "CSeq: 234234 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\n"
    "C: application/sdp\n"
    "Contact:\n"
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.1")
)

ESCNULL = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:null-%00-null@example.com\n"
    "From: sip:null-%00-null@example.com;tag=839923423\n"
    "Max-Forwards: 70\n"
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:%00@host5.example.com>\n"
    "Contact: <sip:%00%00@host5.example.com>\n"
    "L:0\n"
    "\n"
)

ESC02 = crlf(
    "RE%47IST%45R sip:registrar.example.com SIP/2.0\n"
    'To: "%Z%45" <sip:resource@example.com>\n'
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23\n'
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\n"
    "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234\n"
    "CSeq: 29344 RE%47IST%45R\n"
    "Max-Forwards: 70\n"
    "Contact: <sip:alias1@host1.example.com>\n"
    "C%6Fntact: <sip:alias2@host2.example.com>\n"
    "Contact: <sip:alias3@host3.example.com>\n"
    "l: 0\n"
    "\n"
)

LWSDISP = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: caller<sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

LONG_VALUE = "very" + "long" * 20 + "value"
LONG_PARAM = "longparam" + "name" * 25
VALUELESS = "very" + "long" * 25 + "ParameterNameWithNoValue"
CALLER = "amazinglylongcallername" * 5
LONG_TAG = "12" + "982" * 50 + "424"
UNKNOWN_HEADER_PARAM = "unknownheaderparam" + "name" * 20
UNKNOWN_HEADER_VALUE = "unknowheaderparam" + "value" * 15
UNKNOWN_VALUELESS = "unknownValueless" + "paramname" * 10
LONG_CALL_ID = "longreq.one" + "really" * 20 + "longcallid"
LONG_NAME = "Unknown-" + "Long" * 20 + "-Name"
LONG_BRANCH = "very" + "long" * 50 + "branchvalue"
# The same header name spelled 17 ways, then 16 plain Vias: 34 values in all.
VIA_PREFIXES = ["Via: ", "v: ", "V: ", "Via: ", "ViA: ", "VIa: ", "VIA: ", "via: ", "viA: "]
VIA_PREFIXES += ["vIa: ", "vIA: ", "V :  ", "v :  ", "V  : ", "v  : ", "Via : ", "Via  : "]
VIA_PREFIXES += ["Via: "] * 16
LONGREQ = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    f'To: "I have a user name of {"extreme" * 10} proportion"<sip:user@example.com:6000;'
    f"unknownparam1={LONG_VALUE};{LONG_PARAM}=shortvalue;{VALUELESS}>\n"
    f"F: sip:{CALLER}@example.net;tag={LONG_TAG};{UNKNOWN_HEADER_PARAM}={UNKNOWN_HEADER_VALUE};"
    f"{UNKNOWN_VALUELESS}\n"
    f"Call-ID: {LONG_CALL_ID}\n"
    "CSeq: 3882340 INVITE\n"
    f"{LONG_NAME}: unknown-{'long' * 20}-value; unknown-{'long' * 20}-parameter-name = "
    f"unknown-{'long' * 20}-parameter-value\n"
    + "".join(
        f"{prefix}SIP/2.0/TCP sip{33 - index}.example.com\n"
        for index, prefix in enumerate(VIA_PREFIXES)
    )
    + f"Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch={LONG_BRANCH}\n"
    "Max-Forwards: 70\n"
    f"Contact: <sip:{CALLER}@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "l: 150\n"
    "\n" + sdp("192.0.2.1")
)

DBLREQ_SECOND = crlf(
    "INVITE sip:joe@example.com SIP/2.0\n"
    "t: sip:joe@example.com\n"
    "From: sip:caller@example.net;tag=141334\n"
    "Max-Forwards: 8\n"
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.15").replace("m=video", "m =video") + "\n"
)
DBLREQ = (
    crlf(
        "REGISTER sip:example.com SIP/2.0\n"
        "To: sip:j.user@example.com\n"
        "From: sip:j.user@example.com;tag=43251j3j324\n"
        "Max-Forwards: 8\n"
        "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n"
        "Contact: sip:j.user@host.example.com\n"
        "CSeq: 8 REGISTER\n"
        "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n"
        "Content-Length: 0\n"
        "\n"
        "\n"
    )
    + DBLREQ_SECOND
)

SEMIURI = crlf(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n"
    "To: sip:j_user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Call-ID: semiuri.0ha0isndaksdj\n"
    "CSeq: 8 OPTIONS\n"
    "Accept: application/sdp, application/pkcs7-mime,\n"
    "        multipart/mixed, multipart/signed,\n"
    "        message/sip, message/sipfrag\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

TRANSPORTS = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: <sip:caller@example.com>;tag=323\n"
    "Max-Forwards: 70\n"
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj\n"
    "Accept: application/sdp\n"
    "CSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n"
    "l: 0\n"
    "\n"
)

IDENTITY = (
    "r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZng"
    "QmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA="
)
SIGNATURE = bytes.fromhex(
    "3082015206092a864886f70d010702a08201433082013f0201013109300706052b0e03021a300b06092a8648"
    "86f70d010701318201203082011c020101307c3070310b300906035504061302555331133011060355040813"
    "0a43616c69666f726e69613111300f0603550407130853616e204a6f7365310e300c060355040a1305736970"
    "697431293027060355040b13205369706974205465737420436572746966696361746520417574686f726974"
    "7902080195007102330113300706052b0e03021a300d06092a864886f70d01010105000481808ef466f948f0"
    "522dd2e5978e9d95aae9f2fe15a06659716292e8da2aa8d8350a68ceffae3cbd2bff1675ddd5648e593dd647"
    "28f26220f7e941749e330d9a15edabdb93d10c42102e7b7289d29cc0c9ae2efbc7c0cff9172f3b027e4fc027"
    "e1546de4b6aa3abb3e66cccb5dd6c64b8383149cb8e6ff182d944fe57b65bc99d005"
)
MPART01_BODY = (
    crlf(
        "--7a9cbec02ceef655\n"
        "Content-Type: text/plain\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
        "Hello\n"
        "--7a9cbec02ceef655\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
    )
    + SIGNATURE
    + crlf("\n--7a9cbec02ceef655--\n")
)
MPART01 = (
    crlf(
        "MESSAGE sip:kumiko@example.org SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:127.0.0.1:5080>\n"
        f"Identity: {IDENTITY}\n"
        "Contact: <sip:fluffy@127.0.0.1:5070>\n"
        "To: <sip:kumiko@example.org>\n"
        "From: <sip:fluffy@example.com>;tag=2fb0dcc9\n"
        "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Transfer-Encoding: binary\n"
        "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\n"
        "Date: Sat, 15 Oct 2005 04:44:56 GMT\n"
        "User-Agent: SIPimp.org/0.2.5 (curses)\n"
        "Content-Length: 553\n"
        "\n"
    )
    + MPART01_BODY
)

UNREASON_PHRASE = "= 2**3 * 5**2 но сто девяносто девять - простое"
UNREASON = crlf(
    f"SIP/2.0 200 {UNREASON_PHRASE}\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\n"
    "From: sip:user@example.com;tag=11141343\n"
    "To: sip:user@example.edu;tag=2229\n"
    "Content-Length: 154\n"
    "Content-Type: application/sdp\n"
    "Contact: <sip:user@host198.example.com>\n"
    "\n" + sdp("192.0.2.198")
)

NOREASON = crlf(
    "SIP/2.0 100 \n"  # the SP before CRLF is the point of the test
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: noreason.asndj203insdf99223ndf\n"
    "CSeq: 35 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"
)

# A few valid messages of section 3.3 (application layer): the parser must let them through.
UNKSCM = crlf(
    "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"
)

NOVELSC = crlf(
    "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=384\n"
    "Max-Forwards: 3\n"
    "Call-ID: novelsc.asdfasser0q239nwsdfasdkl34\n"
    "CSeq: 3923423 OPTIONS\n"
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\n"
    "Content-Length: 0\n"
    "\n"
)

UNKSM2 = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: isbn:2983792873\n"
    "From: <http://www.example.com>;tag=3234233\n"
    "Call-ID: unksm2.daksdj@hyphenated-host.example.com\n"
    "CSeq: 234902 REGISTER\n"
    "Max-Forwards: 70\n"
    "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\n"
    "Contact: <name:John_Smith>\n"
    "l: 0\n"
    "\n"
)

REGESCRT = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=8\n"
    "Max-Forwards: 70\n"
    "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\n"
    "CSeq: 14398234 REGISTER\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\n"
    "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\n"
    "L:0\n"
    "\n"
)

CPARAM01 = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam01.70710@saturn.example.com\n"
    "CSeq: 2 REGISTER\n"
    "Contact: sip:+19725552222@gw1.example.net;unknownparam\n"
    "l: 0\n"
    "\n"
)

CPARAM02 = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "From: sip:watson@example.com;tag=838293\n"
    "To: sip:watson@example.com\n"
    "Call-ID: cparam02.70710@saturn.example.com\n"
    "CSeq: 3 REGISTER\n"
    "Contact: <sip:+19725552222@gw1.example.net;unknownparam>\n"
    "l: 0\n"
    "\n"
)

INV2543 = crlf(
    "INVITE sip:UserB@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP iftgw.example.com\n"
    "From: <sip:+13035551111@ift.client.example.net;user=phone>\n"
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n"
    "To: sip:+16505552222@ss1.example.net;user=phone\n"
    "Call-ID: inv2543.1717@ift.client.example.com\n"
    "CSeq: 56 INVITE\n"
    "Content-Type: application/sdp\n"
    "\n"
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.5\n"
    "s=-\n"
    "c=IN IP4 192.0.2.5\n"
    "t=0 0\n"
    "m=audio 49217 RTP/AVP 0\n"
)

# --- 3.1.2 Invalid messages ------------------------------------------------------------------

BADINV01 = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=134161461246\n"
    "Max-Forwards: 7\n"
    "Call-ID: badinv01.0ha0isndaksdjasdf3234nas\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n"
    'Contact: "Joe" <sip:joe@example.org>;;;;\n'
    "Content-Length: 152\n"
    "Content-Type: application/sdp\n"
    "\n" + sdp("192.0.2.15")
)

CLERR = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Max-Forwards: 80\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=93942939o2\n"
    "Contact: <sip:caller@hungry.example.net>\n"
    "Call-ID: clerr.0ha0isndaksdjweiafasdk3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 9999\n"
    "\n" + sdp("192.0.2.155")
)

NCL = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Max-Forwards: 254\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=32394234\n"
    "Call-ID: ncl.0ha0isndaksdj2193423r542w35\n"
    "CSeq: 0 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\n"
    "Contact: <sip:caller@example53.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: -999\n"
    "\n" + sdp("192.0.2.53")
)

SCALAR02 = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:user@example.com>;tag=239232jh3\n"
    "CSeq: 36893488147419103232 REGISTER\n"
    "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\n"
    "Max-Forwards: 300\n"
    f"Expires: 1{'0' * 100}\n"
    "Contact: <sip:user@host129.example.com>\n"
    "  ;expires=280297596632815\n"
    "Content-Length: 0\n"
    "\n"
)

SCALARLG = crlf(
    "SIP/2.0 503 Service Unavailable\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:other@example.net>;tag=2easdjfejw\n"
    "CSeq: 9292394834772304023312 OPTIONS\n"
    "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\n"
    "Retry-After: 949302838503028349304023988\n"
    'Warning: 1812 overture "In Progress"\n'
    "Content-Length: 0\n"
    "\n"
)

QUOTBAL = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    'To: "Mr. J. User <sip:j.user@example.com>\n'
    "From: sip:caller@example.net;tag=93334\n"
    "Max-Forwards: 10\n"
    "Call-ID: quotbal.aksdj\n"
    "Contact: <sip:caller@host59.example.net>\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 152\n"
    "\n" + sdp("192.0.2.15")
)

LTGTRURI = crlf(
    "INVITE <sip:user@example.com> SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=39291\n"
    "Max-Forwards: 23\n"
    "Call-ID: ltgtruri.1@192.0.2.5\n"
    "CSeq: 1 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.5\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 159\n"
    "\n" + sdp("192.0.2.5", t="3149328700 0")
)

LWSRURI = crlf(
    "INVITE sip:user@example.com; lr SIP/2.0\n"
    "To: sip:user@example.com;tag=3xfe-9921883-z9f\n"
    "From: sip:caller@example.net;tag=231413434\n"
    "Max-Forwards: 5\n"
    "Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\n"
    "CSeq: 2130706432 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\n"
    "Contact: <sip:caller@host1.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 159\n"
    "\n" + sdp("192.0.2.1", t="3149328700 0")
)

LWSSTART = crlf(
    "INVITE  sip:user@example.com  SIP/2.0\n"
    "Max-Forwards: 8\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=8814\n"
    "Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\n"
    "CSeq: 1893884 INVITE\n"
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\n"
    "Contact: <sip:caller@host1.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.1")
)

TRWS = crlf(
    "OPTIONS sip:remote-target@example.com SIP/2.0  \n"  # the trailing SPs are the point
    "Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093\n"
    "To: <sip:remote-target@example.com>\n"
    "From: <sip:local-resource@example.com>;tag=329429089\n"
    "Call-ID: trws.oicu34958239neffasdhr2345r\n"
    "Accept: application/sdp\n"
    "CSeq: 238923 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n"
    "\n"
)

ESCRURI = crlf(
    "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=341518\n"
    "Max-Forwards: 7\n"
    "Contact: <sip:caller@host39923.example.net>\n"
    "Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\n"
    "CSeq: 149209342 INVITE\n"
    "Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.1")
)

BADDATE = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.net;tag=2234923\n"
    "Max-Forwards: 70\n"
    "Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234\n"
    "CSeq: 1392934 INVITE\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n"
    "Date: Fri, 01 Jan 2010 16:00:00 EST\n"
    "Contact: <sip:caller@host5.example.net>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 150\n"
    "\n" + sdp("192.0.2.5")
)

REGBADCT = crlf(
    "REGISTER sip:example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:user@example.com;tag=998332\n"
    "Max-Forwards: 70\n"
    "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\n"
    "CSeq: 1 REGISTER\n"
    "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\n"
    "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\n"
    "l: 0\n"
    "\n"
)

BADASPEC = crlf(
    "OPTIONS sip:user@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\n"
    "Max-Forwards: 70\n"
    'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423\n'
    'To: "Watson, Thomas" < sip:t.watson@example.org >\n'
    "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\n"
    "Accept: application/sdp\n"
    "CSeq: 3923239 OPTIONS\n"
    "l: 0\n"
    "\n"
)

# The RFC's archive holds this one without the empty line that ends the header section; here
# it has one, so that what is refused is the display name and not the framing.
BADDN = crlf(
    "OPTIONS sip:t.watson@example.org SIP/2.0\n"
    "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\n"
    "Max-Forwards:      70\n"
    "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\n"
    "To:      Watson, Thomas <sip:t.watson@example.org>\n"
    "Call-ID: baddn.31415@c.example.com\n"
    "Accept: application/sdp\n"
    "CSeq:    3923239 OPTIONS\n"
    "l: 0\n"
    "\n"
)

BADVERS = crlf(
    "OPTIONS sip:t.watson@example.org SIP/7.0\n"
    "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\n"
    "Max-Forwards:     70\n"
    "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\n"
    "To:      T. Watson <sip:t.watson@example.org>\n"
    "Call-ID: badvers.31417@c.example.com\n"
    "CSeq:    1 OPTIONS\n"
    "l: 0\n"
    "\n"
)

MISMATCH01 = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=34525\n"
    "Max-Forwards: 6\n"
    "Call-ID: mismatch01.dj0234sxdfl3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n"
    "l: 0\n"
    "\n"
)

MISMATCH02 = crlf(
    "NEWMETHOD sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=34525\n"
    "Max-Forwards: 6\n"
    "Call-ID: mismatch02.dj0234sxdfl3\n"
    "CSeq: 8 INVITE\n"
    "Contact: <sip:caller@host.example.net>\n"
    "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\n"
    "Content-Type: application/sdp\n"
    "l: 138\n"
    "\n"
    "v=0\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.1\n"
    "c=IN IP4 192.0.2.1\n"
    "m=audio 49217 RTP/AVP 0 12\n"
    "m=video 3227 RTP/AVP 31\n"
    "a=rtpmap:31 LPC\n"
)

BIGCODE = crlf(
    "SIP/2.0 4294967301 better not break the receiver\n"
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\n"
    "CSeq: 353494 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\n"
    "Contact: <sip:user@host105.example.com>\n"
    "\n"
)

BADBRANCH = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "To: sip:user@example.com\n"
    "From: sip:caller@example.org;tag=33242\n"
    "Max-Forwards: 3\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\n"
    "Accept: application/sdp\n"
    "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\n"
    "CSeq: 8 OPTIONS\n"
    "l: 0\n"
    "\n"
)

INSUF = crlf(
    "INVITE sip:user@example.com SIP/2.0\n"
    "CSeq: 193942 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\n"
    "Content-Type: application/sdp\n"
    "l: 152\n"
    "\n" + sdp("192.0.2.95")
)

MULTI01 = crlf(
    "INVITE sip:user@company.com SIP/2.0\n"
    "Contact: <sip:caller@host25.example.net>\n"
    "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\n"
    "Max-Forwards: 70\n"
    "CSeq: 5 INVITE\n"
    "Call-ID: multi01.98asdh@192.0.2.1\n"
    "CSeq: 59 INVITE\n"
    "Call-ID: multi01.98asdh@192.0.2.2\n"
    "From: sip:caller@example.com;tag=3413415\n"
    "To: sip:user@example.com\n"
    "To: sip:other@example.net\n"
    "From: sip:caller@example.net;tag=2923420123\n"
    "Content-Type: application/sdp\n"
    "l: 154\n"
    "Contact: <sip:caller@host36.example.net>\n"
    "Max-Forwards: 5\n"
    "\n" + sdp("192.0.2.25") + "\n"
)

MCL01 = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\n"
    "To: sip:user@example.com\n"
    "From: sip:other@example.net;tag=3923942\n"
    "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\n"
    "CSeq: 15932 OPTIONS\n"
    "Content-Length: 13\n"
    "Max-Forwards: 60\n"
    "Content-Length: 5\n"
    "Content-Type: text/plain\n"
    "\n"
    "There's no way to know how many octets are supposed to be here.\n"
    "\n"
)


# --- Valid (or tolerated) messages parse, with the right start line, Call-ID and body ---------

# (RFC section-name, message, method or status, Request-URI or reason, Call-ID, body size)
VALID: list[tuple[str, bytes, str | int, str, str, int]] = [
    (
        "3.1.1.1-wsinv",
        WSINV,
        "INVITE",
        "sip:vivekg@chair-dnrc.example.com;unknownparam",
        "wsinv.ndaksdj@192.0.2.1",
        150,
    ),
    (
        "3.1.1.2-intmeth",
        INTMETH,
        ODD_METHOD,
        f"sip:{UNUSUAL_USER}:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        0,
    ),
    (
        "3.1.1.3-esc01",
        ESC01,
        "INVITE",
        "sip:sips%3Auser%40example.com@example.net",
        "esc01.239409asdfakjkn23onasd0-3234",
        150,
    ),
    (
        "3.1.1.4-escnull",
        ESCNULL,
        "REGISTER",
        "sip:example.com",
        "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
        0,
    ),
    (
        "3.1.1.5-esc02",
        ESC02,
        "RE%47IST%45R",
        "sip:registrar.example.com",
        "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
        0,
    ),
    (
        "3.1.1.6-lwsdisp",
        LWSDISP,
        "OPTIONS",
        "sip:user@example.com",
        "lwsdisp.1234abcd@funky.example.com",
        0,
    ),
    ("3.1.1.7-longreq", LONGREQ, "INVITE", "sip:user@example.com", LONG_CALL_ID, 150),
    (
        "3.1.1.8-dblreq",
        DBLREQ,
        "REGISTER",
        "sip:example.com",
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412",
        0,
    ),
    (
        "3.1.1.9-semiuri",
        SEMIURI,
        "OPTIONS",
        "sip:user;par=u%40example.net@example.com",
        "semiuri.0ha0isndaksdj",
        0,
    ),
    (
        "3.1.1.10-transports",
        TRANSPORTS,
        "OPTIONS",
        "sip:user@example.com",
        "transports.kijh4akdnaqjkwendsasfdj",
        0,
    ),
    (
        "3.1.1.11-mpart01",
        MPART01,
        "MESSAGE",
        "sip:kumiko@example.org",
        "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
        553,
    ),
    (
        "3.1.1.12-unreason",
        UNREASON,
        200,
        UNREASON_PHRASE,
        "unreason.1234ksdfak3j2erwedfsASdf",
        154,
    ),
    ("3.1.1.13-noreason", NOREASON, 100, "", "noreason.asndj203insdf99223ndf", 0),
    (
        "3.1.2.12-baddate-tolerated",
        BADDATE,
        "INVITE",
        "sip:user@example.com",
        "baddate.239423mnsadf3j23lj42--sedfnm234",
        150,
    ),
    (
        "3.2.1-badbranch-tolerated",
        BADBRANCH,
        "OPTIONS",
        "sip:user@example.com",
        "badbranch.sadonfo23i420jv0as0derf3j3n",
        0,
    ),
    (
        "3.3.2-unkscm",
        UNKSCM,
        "OPTIONS",
        "nobodyKnowsThisScheme:totallyopaquecontent",
        "unkscm.nasdfasser0q239nwsdfasdkl34",
        0,
    ),
    (
        "3.3.3-novelsc",
        NOVELSC,
        "OPTIONS",
        "soap.beep://192.0.2.103:3002",
        "novelsc.asdfasser0q239nwsdfasdkl34",
        0,
    ),
    (
        "3.3.4-unksm2",
        UNKSM2,
        "REGISTER",
        "sip:example.com",
        "unksm2.daksdj@hyphenated-host.example.com",
        0,
    ),
    (
        "3.3.12-cparam01",
        CPARAM01,
        "REGISTER",
        "sip:example.com",
        "cparam01.70710@saturn.example.com",
        0,
    ),
    (
        "3.3.13-cparam02",
        CPARAM02,
        "REGISTER",
        "sip:example.com",
        "cparam02.70710@saturn.example.com",
        0,
    ),
    (
        "3.3.14-regescrt",
        REGESCRT,
        "REGISTER",
        "sip:example.com",
        "regescrt.k345asrl3fdbv@192.0.2.1",
        0,
    ),
    (
        "3.4.1-inv2543-tolerated",
        INV2543,
        "INVITE",
        "sip:UserB@example.com",
        "inv2543.1717@ift.client.example.com",
        105,
    ),
]


@pytest.mark.parametrize(
    ("data", "first", "second", "call_id", "body_size"),
    [case[1:] for case in VALID],
    ids=[case[0] for case in VALID],
)
def test_valid_message_parses(
    data: bytes, first: str | int, second: str, call_id: str, body_size: int
) -> None:
    message = parse_message(data)
    if isinstance(first, int):
        assert isinstance(message, Response)
        assert (message.status, message.reason) == (first, second)
    else:
        assert isinstance(message, Request)
        assert (message.method, message.uri) == (first, second)
    assert message.headers.get("Call-ID") == call_id
    assert len(message.body) == body_size


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def test_wsinv_folding_odd_whitespace_and_compact_forms() -> None:
    headers = request(WSINV).headers
    to = parse_name_addr(headers.get("To") or "")
    assert (to.uri, to.display_name, to.tag) == (
        "sip:vivekg@chair-dnrc.example.com",
        None,
        "1918181833n",
    )
    sender = parse_name_addr(headers.get("From") or "")
    assert sender == NameAddr("sip:jdrosen@example.com", 'J Rosenberg \\"', {"tag": "98asjd8"})
    assert headers.get("Max-Forwards") == "0068"
    assert parse_cseq(headers.get("CSeq") or "") == (9, "INVITE")
    assert [parse_via(via) for via in headers.get_all("Via")] == [
        Via("UDP", "192.0.2.2", None, {"branch": "390skdjuw"}),
        Via("TCP", "spindle.example.com", None, {"branch": "z9hG4bK9ikj8"}),
        Via("UDP", "192.168.255.111", None, {"branch": "z9hG4bK30239"}),
    ]
    assert headers.get("Subject") == ""
    assert headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = parse_name_addr(headers.get("Route") or "")
    assert parse_uri(route.uri).params == {
        "lr": None,
        "unknownwith": "value",
        "unknown-no-value": None,
    }
    assert headers.get_all("Contact") == [
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; '
        "secondparam ; q = 0.33"
    ]
    contact = parse_name_addr(headers.get("Contact") or "")
    assert contact == NameAddr(
        "sip:jdrosen@example.com",
        'Quoted string ""',
        {"newparam": "newvalue", "secondparam": None, "q": "0.33"},
    )


def test_intmeth_odd_characters_everywhere() -> None:
    message = request(INTMETH)
    uri = parse_uri(message.uri)
    assert (uri.user, uri.password, uri.host) == (
        UNUSUAL_USER,
        "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
        "example.com",
    )
    headers = message.headers
    to = parse_name_addr(headers.get("To") or "")
    assert to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert parse_uri(to.uri).user == UNUSUAL_USER
    sender = parse_name_addr(headers.get("From") or "")
    assert sender.display_name == "token1~` token2'+_ token3*%!.-"
    assert sender.params == {"fromparam''~+*_!.-%": '"работающий"', "tag": "_token~1'+`*%!-."}
    assert parse_cseq(headers.get("CSeq") or "") == (139122385, ODD_METHOD)
    assert parse_via(headers.get("Via") or "").branch == "z9hG4bK-.!%66*_+`'~"
    assert headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_are_kept_as_written() -> None:
    headers = request(ESC01).headers
    assert (
        parse_uri("sip:sips%3Auser%40example.com@example.net").user == "sips%3Auser%40example.com"
    )
    assert parse_uri(parse_name_addr(headers.get("To") or "").uri).user == "%75se%72"
    contact = parse_uri(parse_name_addr(headers.get("Contact") or "").uri)
    assert contact.user == "cal%6Cer"
    assert contact.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert headers.get("Content-Type") == "application/sdp"


def test_escnull_two_distinct_contacts() -> None:
    headers = request(ESCNULL).headers
    assert [parse_uri(parse_name_addr(c).uri).user for c in headers.get_all("Contact")] == [
        "%00",
        "%00%00",
    ]
    assert parse_uri(parse_name_addr(headers.get("To") or "").uri).user == "null-%00-null"


def test_esc02_percent_is_not_an_escape_in_names() -> None:
    headers = request(ESC02).headers
    assert headers.get_all("Contact") == [
        "<sip:alias1@host1.example.com>",
        "<sip:alias3@host3.example.com>",
    ]
    assert headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert parse_name_addr(headers.get("To") or "").display_name == "%Z%45"
    assert parse_via(headers.get("Via") or "").branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp_display_name_without_space_before_angle() -> None:
    sender = parse_name_addr(request(LWSDISP).headers.get("From") or "")
    assert sender == NameAddr("sip:caller@example.com", "caller", {"tag": "323"})


def test_longreq_long_values_and_many_vias() -> None:
    headers = request(LONGREQ).headers
    vias = [parse_via(via) for via in headers.get_all("Via")]
    assert [via.host for via in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[33] == Via(
        "TCP", "host.example.com", None, {"received": "192.0.2.5", "branch": LONG_BRANCH}
    )
    to = parse_name_addr(headers.get("To") or "")
    assert to.display_name == f"I have a user name of {'extreme' * 10} proportion"
    assert parse_uri(to.uri) == SipUri(
        "sip",
        "user",
        "example.com",
        6000,
        {"unknownparam1": LONG_VALUE, LONG_PARAM: "shortvalue", VALUELESS.lower(): None},
    )
    assert parse_name_addr(headers.get("From") or "").params == {
        "tag": LONG_TAG,
        UNKNOWN_HEADER_PARAM: UNKNOWN_HEADER_VALUE,
        UNKNOWN_VALUELESS.lower(): None,
    }
    assert headers.get(LONG_NAME.lower()) == (
        f"unknown-{'long' * 20}-value; unknown-{'long' * 20}-parameter-name = "
        f"unknown-{'long' * 20}-parameter-value"
    )


def test_dblreq_second_request_is_not_part_of_the_first() -> None:
    assert request(DBLREQ).body == b""
    second = request(DBLREQ_SECOND)
    assert (second.method, second.headers.get("To")) == ("INVITE", "sip:joe@example.com")


def test_semiuri_user_part_holds_a_semicolon() -> None:
    message = request(SEMIURI)
    uri = parse_uri(message.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", {})
    assert message.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_every_via_transport_kept() -> None:
    vias = request(TRANSPORTS).headers.get_all("Via")
    assert [parse_via(via).transport for via in vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body_and_long_identity() -> None:
    message = request(MPART01)
    assert message.body == MPART01_BODY
    assert message.headers.get("Identity") == IDENTITY
    assert message.headers.get("Date") == "Sat, 15 Oct 2005 04:44:56 GMT"
    assert parse_via(message.headers.get("Via") or "").params["rport"] is None


def test_badbranch_branch_is_only_the_magic_cookie() -> None:
    assert parse_via(request(BADBRANCH).headers.get("Via") or "").branch == "z9hG4bK"


def test_baddate_date_is_kept_uninterpreted() -> None:
    assert request(BADDATE).headers.get_all("Date") == ["Fri, 01 Jan 2010 16:00:00 EST"]


def test_unknown_schemes_in_header_fields_are_opaque() -> None:
    headers = request(UNKSM2).headers
    assert parse_name_addr(headers.get("To") or "") == NameAddr("isbn:2983792873")
    assert parse_name_addr(headers.get("From") or "").uri == "http://www.example.com"
    assert parse_name_addr(headers.get("Contact") or "").uri == "name:John_Smith"


def test_cparam_header_parameter_versus_uri_parameter() -> None:
    bare = parse_name_addr(request(CPARAM01).headers.get("Contact") or "")
    assert bare.params == {"unknownparam": None}
    assert parse_uri(bare.uri).params == {}
    bracketed = parse_name_addr(request(CPARAM02).headers.get("Contact") or "")
    assert bracketed.params == {}
    assert parse_uri(bracketed.uri).params == {"unknownparam": None}


def test_regescrt_escaped_header_inside_angle_brackets() -> None:
    contact = parse_name_addr(request(REGESCRT).headers.get("Contact") or "")
    assert parse_uri(contact.uri).headers == {"Route": "%3Csip:sip.example.com%3E"}


def test_inv2543_without_branch_or_max_forwards() -> None:
    message = request(INV2543)
    assert parse_via(message.headers.get("Via") or "").branch is None
    assert "Max-Forwards" not in message.headers


# --- Invalid messages are refused -------------------------------------------------------------

# (RFC section-name, message, what the error says)
INVALID = [
    ("3.1.2.1-badinv01", BADINV01, "bad parameter name ''"),
    ("3.1.2.2-clerr", CLERR, "truncated body"),
    ("3.1.2.3-ncl", NCL, "negative Content-Length"),
    ("3.1.2.4-scalar02", SCALAR02, "CSeq number 36893488147419103232 is too large"),
    ("3.1.2.5-scalarlg", SCALARLG, "CSeq number 9292394834772304023312 is too large"),
    ("3.1.2.6-quotbal", QUOTBAL, "unterminated quoted string"),
    ("3.1.2.7-ltgtruri", LTGTRURI, "malformed URI '<sip:user@example.com>'"),
    ("3.1.2.8-lwsruri", LWSRURI, "request line"),
    ("3.1.2.9-lwsstart", LWSSTART, "request line"),
    ("3.1.2.10-trws", TRWS, "request line"),
    ("3.1.2.11-escruri", ESCRURI, "Request-URI must not have headers"),
    ("3.1.2.13-regbadct", REGBADCT, "must be in <>"),
    ("3.1.2.14-badaspec", BADASPEC, "malformed URI ' sip:t.watson@example.org '"),
    ("3.1.2.15-baddn", BADDN, "display name 'Bell, Alexander'"),
    ("3.1.2.16-badvers", BADVERS, f"{UNSUPPORTED_VERSION} SIP/7.0"),
    ("3.1.2.17-mismatch01", MISMATCH01, "CSeq method 'INVITE' differs from 'OPTIONS'"),
    ("3.1.2.18-mismatch02", MISMATCH02, "CSeq method 'INVITE' differs from 'NEWMETHOD'"),
    ("3.1.2.19-bigcode", BIGCODE, "malformed status code '4294967301'"),
    ("3.3.1-insuf", INSUF, "missing mandatory header(s): To, From, Call-ID"),
    ("3.3.8-multi01", MULTI01, "more than one To header"),
    ("3.3.9-mcl01", MCL01, "more than one Content-Length"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_message_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert reason in str(caught.value)


@pytest.mark.parametrize("data", [case[1] for case in INVALID], ids=[case[0] for case in INVALID])
def test_only_the_bad_version_reads_as_a_version_error(data: bytes) -> None:
    """A UAS answers 505 rather than 400 exactly when the error names the version."""
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert (UNSUPPORTED_VERSION in str(caught.value)) == (data is BADVERS)


# Errors visible only once a URI, name-addr or Via is parsed (the helpers are held to them).
BAD_VALUES = [
    ("3.1.2.7-ltgtruri", parse_uri, "<sip:user@example.com>"),
    ("3.1.2.8-lwsruri", parse_uri, "sip:user@example.com; lr"),
    ("3.1.2.6-quotbal", parse_name_addr, '"Mr. J. User <sip:j.user@example.com>'),
    ("3.1.2.13-regbadct", parse_name_addr, "sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
    ("3.1.2.14-badaspec", parse_name_addr, '"Watson, Thomas" < sip:t.watson@example.org >'),
    ("3.1.2.15-baddn", parse_name_addr, "Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
    ("3.1.2.1-badinv01-contact", parse_name_addr, '"Joe" <sip:joe@example.org>;;;;'),
    ("3.1.2.1-badinv01-via", parse_via, "SIP/2.0/UDP 192.0.2.15;;"),
    ("3.1.2.16-badvers-via", parse_via, "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"),
    ("3.1.2.4-scalar02-cseq", parse_cseq, "36893488147419103232 REGISTER"),
]


@pytest.mark.parametrize(
    ("parse", "text"), [case[1:] for case in BAD_VALUES], ids=[case[0] for case in BAD_VALUES]
)
def test_invalid_value_is_refused_by_its_parser(parse: Callable[[str], object], text: str) -> None:
    with pytest.raises(SipParseError):
        parse(text)


def test_escaped_headers_are_fine_in_a_uri_but_not_in_a_request_uri() -> None:
    uri = parse_uri("sip:user@example.com?Route=%3Csip:example.com%3E")
    assert uri.headers == {"Route": "%3Csip:example.com%3E"}
    assert (
        parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").uri
        == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    )
