# kairo-gw for non-Pi hosts (amd64 or arm64; sodium-native has no 32-bit ARM build).
#   docker build -t kairo-gw .
#   docker run --rm -it -p 47800:47800/udp -v kairo-state:/var/lib/kairo-gw kairo-gw
FROM node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends flatbuffers-compiler socat libpcap-dev python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/kairo-gw
COPY package.json package-lock.json ./
# The two native packages of the project's own are file: dependencies: npm ci builds them.
COPY drivers/ethernet/vendor/cap drivers/ethernet/vendor/cap
COPY appliance/native appliance/native
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
RUN node scripts/gen-schemas.mjs

RUN mkdir -p /var/lib/kairo-gw && chown node:node /var/lib/kairo-gw && chmod 0700 /var/lib/kairo-gw
ENV KAIRO_STATE_DIR=/var/lib/kairo-gw
VOLUME /var/lib/kairo-gw
EXPOSE 47800/udp
USER node
ENTRYPOINT ["node", "appliance/bin/kairo-gw.mjs"]
CMD ["run", "--host", "0.0.0.0", "--state-dir", "/var/lib/kairo-gw"]
