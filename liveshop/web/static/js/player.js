// The video player: HLS for everyone (hls.js where the browser has Media Source Extensions,
// the native player on Safari/iOS), WebRTC (WHEP) for sub-second latency when the room
// offers it, falling back to HLS when WHEP is full or fails. The vendor script is served
// by liveshop (scripts/build-web copies it from npm): nothing comes from the internet.

import { ApiError, session } from "./api.js";

const ICE_TIMEOUT = 8000;

export class Player {
  constructor(video, { onMode = () => {} } = {}) {
    this.video = video;
    this.onMode = onMode;
    this.hls = null;
    this.pc = null;
    this.whepSession = null;
    this.source = null; // what plays now: {kind, url}
    this.generation = 0;
    video.muted = true; // browsers only autoplay muted video; the page offers "unmute"
    video.playsInline = true;
  }

  /** Play `url` (HLS) from `startAt` seconds (premieres and replays), or the live edge. */
  async playHls(url, startAt = null) {
    if (this.source && this.source.kind === "hls" && this.source.url === url) return;
    const generation = this.reset({ kind: "hls", url });
    const video = this.video;
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({
        lowLatencyMode: true,
        liveSyncDurationCount: 2,
        startPosition: startAt ?? -1,
        manifestLoadingMaxRetry: 30,
        levelLoadingMaxRetry: 30,
        fragLoadingMaxRetry: 10,
      });
      this.hls = hls;
      hls.on(window.Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal || generation !== this.generation) return;
        if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else setTimeout(() => generation === this.generation && hls.startLoad(), 1000);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      if (startAt !== null) {
        video.addEventListener("loadedmetadata", () => { video.currentTime = startAt; }, { once: true });
      }
    } else {
      throw new ApiError("unsupported", "This browser cannot play HLS video.");
    }
    this.onMode("hls");
    await this.start();
  }

  /** Play the room's stream over WebRTC (WHEP); throws when it is not offered now. */
  async playWhep(room) {
    if (this.source && this.source.kind === "whep" && this.source.url === room) return;
    const generation = this.reset({ kind: "whep", url: room });
    const pc = new RTCPeerConnection();
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      this.video.srcObject = stream;
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const who = session();
    const response = await fetch(`/media/rooms/${encodeURIComponent(room)}/whep`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...(who ? { Authorization: `Bearer ${who.token}` } : {}) },
      body: pc.localDescription.sdp,
    });
    if (generation !== this.generation) {
      // Switched meanwhile: end the session the server just made for us.
      const late = response.headers.get("Location");
      if (response.status === 201 && late) {
        fetch(late, { method: "DELETE", headers: authorization() }).catch(() => {});
      }
      pc.close();
      return;
    }
    if (response.status !== 201) {
      this.reset(null);
      let code = "unavailable";
      try {
        code = (await response.json()).error.code;
      } catch {
        // not JSON
      }
      throw new ApiError(code, "WebRTC playback is not available now.", { status: response.status });
    }
    this.whepSession = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    await connected(pc);
    pc.onconnectionstatechange = () => {
      if (["failed", "closed"].includes(pc.connectionState) && generation === this.generation) {
        this.video.dispatchEvent(new Event("whepfailed"));
      }
    };
    this.onMode("webrtc");
    await this.start();
  }

  async start() {
    try {
      await this.video.play();
    } catch {
      // Autoplay refused (rare when muted): the page's play button starts it.
    }
  }

  /** Stop what plays; returns the new generation (late answers of old ones are dropped). */
  reset(source) {
    this.generation += 1;
    if (this.hls) this.hls.destroy();
    this.hls = null;
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.whepSession) {
      fetch(this.whepSession, { method: "DELETE", headers: authorization(), keepalive: true })
        .catch(() => {});
    }
    this.whepSession = null;
    this.video.removeAttribute("src");
    this.video.srcObject = null;
    this.source = source;
    if (!source) this.onMode("off");
    return this.generation;
  }

  stop() {
    this.reset(null);
    this.video.load();
  }
}

function authorization() {
  const who = session();
  return who ? { Authorization: `Bearer ${who.token}` } : {};
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000); // enough host candidates by then
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function connected(pc) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ApiError("unavailable", "WebRTC did not connect.")), ICE_TIMEOUT);
    const check = () => {
      if (pc.connectionState === "connected") {
        clearTimeout(timer);
        resolve();
      } else if (["failed", "closed"].includes(pc.connectionState)) {
        clearTimeout(timer);
        reject(new ApiError("unavailable", "WebRTC failed."));
      }
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

/** Start the browser's camera and microphone and publish them to the room (WHIP). */
export async function publish(room, video, { slot = "primary" } = {}) {
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    audio: true,
  });
  video.srcObject = media;
  video.muted = true;
  await video.play().catch(() => {});
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const who = session();
  const response = await fetch(`/media/rooms/${encodeURIComponent(room)}/whip?slot=${slot}`, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${who ? who.token : ""}` },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    pc.close();
    for (const track of media.getTracks()) track.stop();
    let error = { code: "unavailable", message: `The server answered ${response.status}.` };
    try {
      error = (await response.json()).error;
    } catch {
      // not JSON
    }
    throw new ApiError(error.code, error.message, { status: response.status });
  }
  const location = response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return {
    pc,
    media,
    location,
    async stop() {
      // Close first: the camera must stop even if the token has expired meanwhile.
      pc.close();
      await fetch(location, { method: "DELETE", headers: authorization() }).catch(() => {});
      for (const track of media.getTracks()) track.stop();
      video.srcObject = null;
    },
  };
}
