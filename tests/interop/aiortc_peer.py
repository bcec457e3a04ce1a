#!/usr/bin/env python3
"""A Courier call peer built on aiortc, an independent WebRTC stack.

It signs in to a Courier server over the WebSocket protocol and either
answers one incoming call (default) or places one (`--call USER`), then does
the media side with aiortc as protocol §12 describes: offer/answer as
`signal`s to {"call": iid}, candidates in the `candidate:` form with `mid`,
a sine tone sent, what it hears written to a 16-bit PCM WAV, and
{"t":"end","reason":"hangup"} after --for seconds (or the peer's `end`).

Its last stdout line is a JSON report: outcome, iid, ice state, end reason,
whether the peer ended the call, frames sent and received. Exit 0 when ICE
connected, 1 otherwise. The interop test (crates/client/tests/calls_interop.rs)
runs it with the venv scripts/setup.sh --test makes.
"""

import argparse
import asyncio
import fractions
import json
import logging
import math
import sys
import time
import wave

import av
import websockets
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp

RATE = 48_000
PTIME = 0.02  # seconds of audio a frame


def log(*parts):
    print("aiortc-peer:", *parts, file=sys.stderr, flush=True)


class Tone(MediaStreamTrack):
    """A sine tone at `hz`, 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self, hz, amplitude=0.3):
        super().__init__()
        self.hz, self.amp = hz, amplitude
        self.start, self.n, self.sent = None, 0, 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        samples = int(RATE * PTIME)
        if self.start is None:
            self.start = time.time()
        else:
            await asyncio.sleep(self.start + self.n / RATE - time.time())
        w = 2 * math.pi * self.hz / RATE
        pcm = b"".join(
            int(self.amp * 32767 * math.sin(w * (self.n + i))).to_bytes(2, "little", signed=True)
            for i in range(samples)
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm)
        frame.pts, frame.sample_rate = self.n, RATE
        frame.time_base = fractions.Fraction(1, RATE)
        self.n += samples
        self.sent += 1
        return frame


class Recorder:
    """Writes a received audio track as 16-bit mono PCM WAV at 48 kHz."""

    def __init__(self, path):
        self.path, self.frames, self.task = path, 0, None
        self.wav = None

    def start(self, track):
        self.wav = wave.open(self.path, "wb")
        self.wav.setnchannels(1)
        self.wav.setsampwidth(2)
        self.wav.setframerate(RATE)
        self.task = asyncio.ensure_future(self.run(track))

    async def run(self, track):
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            for f in resampler.resample(frame):
                self.wav.writeframes(bytes(f.planes[0])[: f.samples * 2])
            self.frames += 1

    async def stop(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.wav:
            self.wav.close()


class FrameCounter:
    """Decodes a received video track and counts its frames."""

    def __init__(self):
        self.frames, self.size, self.task = 0, None, None

    def start(self, track):
        self.task = asyncio.ensure_future(self.run(track))

    async def run(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            self.size = [frame.width, frame.height]

    async def stop(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


class Peer:
    def __init__(self, args):
        self.args = args
        self.ws = None
        self.next_id = 0
        self.replies = {}
        self.events = asyncio.Queue()
        self.pc = None
        self.iid = None
        self.ice_servers = []
        self.pending_candidates = []
        self.remote_set = False
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.report = {"outcome": "no_call", "ice": None, "end_reason": None, "ended_by_peer": False}
        self.tone = Tone(args.tone)
        # aiortc's own test source: 640×480 frames at 30 fps, VP8-encoded by aiortc.
        self.camera = VideoStreamTrack() if args.send_video else None
        self.recorder = Recorder(args.record) if args.record else None
        self.video = FrameCounter()

    # -- the Courier protocol ------------------------------------------------

    async def request(self, op, **fields):
        self.next_id += 1
        rid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.replies[rid] = fut
        await self.ws.send(json.dumps({"op": op, "id": rid, **fields}))
        reply = await asyncio.wait_for(fut, 30)
        if "err" in reply:
            raise RuntimeError(f"{op}: {reply['err']}")
        return reply["ok"]

    async def reader(self):
        async for text in self.ws:
            frame = json.loads(text)
            if "re" in frame and frame["re"] in self.replies:
                self.replies.pop(frame["re"]).set_result(frame)
            elif "ev" in frame:
                await self.events.put(frame)

    async def signal(self, body):
        await self.request("signal", to={"call": self.iid}, body=body)

    # -- WebRTC ----------------------------------------------------------------

    def make_pc(self):
        servers = [
            RTCIceServer(
                urls=s["urls"] if isinstance(s["urls"], list) else [s["urls"]],
                username=s.get("username"),
                credential=s.get("credential"),
            )
            for s in self.ice_servers
        ]
        # iceServers=[] explicitly: aiortc's default is a public STUN server.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

        @pc.on("track")
        def on_track(track):
            log("remote track", track.kind)
            if track.kind == "audio" and self.recorder and self.recorder.task is None:
                self.recorder.start(track)
            if track.kind == "video" and self.video.task is None:
                self.video.start(track)

        @pc.on("iceconnectionstatechange")
        def on_ice():
            log("ICE", pc.iceConnectionState)
            self.report["ice"] = pc.iceConnectionState
            if pc.iceConnectionState in ("completed", "connected"):
                self.connected.set()
            if pc.iceConnectionState == "failed":
                self.ended.set()

        return pc

    async def add_candidate(self, body):
        line = body.get("candidate", "")
        if not line:
            return  # end of gathering
        if not self.remote_set:
            self.pending_candidates.append(body)
            return
        sdp = line[len("candidate:") :] if line.startswith("candidate:") else line
        try:
            cand = candidate_from_sdp(sdp)
        except (AssertionError, ValueError) as e:
            log("unparsable candidate", line, e)
            return
        if cand.protocol.lower() != "udp":
            return  # aiortc's ICE is UDP only
        cand.sdpMid = body.get("mid")
        cand.sdpMLineIndex = body.get("mline")
        if cand.sdpMid is None and cand.sdpMLineIndex is None:
            cand.sdpMLineIndex = 0
        await self.pc.addIceCandidate(cand)

    async def set_remote(self, kind, sdp):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        self.remote_set = True
        for body in self.pending_candidates:
            await self.add_candidate(body)
        self.pending_candidates = []

    async def answer_offer(self, sdp):
        log("offer received")
        await self.set_remote("offer", sdp)
        if not any(s.track is self.tone for s in self.pc.getSenders()):
            self.pc.addTrack(self.tone)
        if self.camera and not any(s.track is self.camera for s in self.pc.getSenders()):
            self.pc.addTrack(self.camera)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        # aiortc does not trickle: its candidates are in the SDP.
        await self.signal({"t": "answer", "sdp": self.pc.localDescription.sdp})
        if self.args.dump_sdp:
            log("offer:\n" + sdp + "\nanswer:\n" + self.pc.localDescription.sdp)

    async def send_offer(self):
        def video():
            if self.camera:
                self.pc.addTrack(self.camera)
            else:
                self.pc.addTransceiver("video", direction="recvonly")

        if self.args.video_first:
            video()
            self.pc.addTrack(self.tone)
        else:
            self.pc.addTrack(self.tone)
            video()
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        # Candidates ride inside the SDP (aiortc gathers before it returns).
        await self.signal({"t": "offer", "sdp": self.pc.localDescription.sdp})
        if self.args.dump_sdp:
            log("offer:\n" + self.pc.localDescription.sdp)

    async def on_call_signal(self, body):
        t = body.get("t")
        if t in ("offer", "renegotiate"):
            await self.answer_offer(body["sdp"])
        elif t == "answer":
            log("answer received")
            if self.args.dump_sdp:
                log("answer:\n" + body["sdp"])
            await self.set_remote("answer", body["sdp"])
        elif t == "candidate":
            await self.add_candidate(body)
        elif t == "end":
            log("peer ended:", body.get("reason"))
            self.report["end_reason"] = body.get("reason")
            self.report["ended_by_peer"] = True
            self.ended.set()

    # -- the call ------------------------------------------------------------

    async def wait_invite(self):
        log("waiting for calls to", self.args.user)
        while True:
            ev = await self.events.get()
            if ev["ev"] == "invite" and ev["invite"]["state"] == "pending":
                inv = ev["invite"]
                ok = await self.request("invite_answer", iid=inv["iid"], accept=True, response={})
                log("accepted call", inv["iid"], "from", inv["from"], "call_device", ok.get("call_device"))
                return inv["iid"]

    async def place_call(self):
        ok = await self.request("invite", to=self.args.call, content={"video": self.args.video}, ttl_s=60)
        iid = ok["invite"]["iid"]
        log("calling", self.args.call, iid)
        while True:
            ev = await self.events.get()
            if ev["ev"] == "invite_state" and ev["invite"]["iid"] == iid:
                state = ev["invite"]["state"]
                if state == "accepted":
                    return iid
                if state != "pending":
                    self.report["outcome"] = state
                    return None

    async def pump_signals(self):
        while True:
            ev = await self.events.get()
            if ev["ev"] == "signal" and ev.get("to") == {"call": self.iid}:
                try:
                    await self.on_call_signal(ev["body"])
                except Exception as e:  # noqa: BLE001 - report, then end the call
                    log("signal failed:", type(e).__name__, e)
                    self.report["error"] = f"{type(e).__name__}: {e}"
                    self.ended.set()

    async def run(self):
        url = self.args.server.rstrip("/") + "/v1/ws"
        async with websockets.connect(url, subprotocols=["courier.v1"], max_size=None) as ws:
            self.ws = ws
            reader = asyncio.ensure_future(self.reader())
            hello = await self.request(
                "hello", token=self.args.token or f"dev:{self.args.user}", device="aiortc-peer", client="aiortc-peer/0.1"
            )
            self.ice_servers = hello.get("ice_servers") or []
            self.iid = await (self.place_call() if self.args.call else self.wait_invite())
            if self.iid is None:
                return
            self.report["iid"] = self.iid
            self.pc = self.make_pc()
            pump = asyncio.ensure_future(self.pump_signals())
            if self.args.call:
                await self.send_offer()
            try:
                await asyncio.wait_for(self.connected.wait(), 30)
            except asyncio.TimeoutError:
                self.report["outcome"] = "ice_failed"
                await self.signal({"t": "end", "reason": "failed"})
                return
            self.report["outcome"] = "connected"
            try:
                await asyncio.wait_for(self.ended.wait(), self.args.for_s)
            except asyncio.TimeoutError:
                self.report["end_reason"] = "hangup"
                await self.signal({"t": "end", "reason": "hangup"})
            pump.cancel()
            reader.cancel()

    async def finish(self):
        if self.recorder:
            await self.recorder.stop()
        await self.video.stop()
        if self.pc:
            await self.pc.close()
        self.report["frames_sent"] = self.tone.sent
        self.report["frames_received"] = self.recorder.frames if self.recorder else None
        self.report["video_frames_received"] = self.video.frames
        self.report["video_size"] = self.video.size
        print(json.dumps(self.report), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="ws://host:port of the Courier server")
    p.add_argument("--user", required=True)
    p.add_argument("--token", help="default dev:<user> (a server in dev mode)")
    p.add_argument("--call", metavar="USER", help="place a call instead of answering one")
    p.add_argument("--tone", type=float, default=660.0)
    p.add_argument("--video", action="store_true", help="ask for video (content.video) and decode what arrives")
    p.add_argument("--send-video", action="store_true", help="send aiortc's test video (640×480, 30 fps)")
    p.add_argument("--video-first", action="store_true",
                   help="offer the video m-line before the audio one (as an app that adds its camera first)")
    p.add_argument("--record", metavar="OUT.wav")
    p.add_argument("--for", dest="for_s", type=float, default=60.0, help="hang up this long after ICE connects")
    p.add_argument("--dump-sdp", action="store_true", help="print both descriptions on stderr")
    p.add_argument("--debug", action="store_true", help="aiortc's debug log on stderr")
    args = p.parse_args()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)
    peer = Peer(args)

    async def go():
        try:
            await peer.run()
        finally:
            await peer.finish()

    asyncio.run(go())
    sys.exit(0 if peer.report["outcome"] == "connected" else 1)


if __name__ == "__main__":
    main()
