# One image for every process: `arauto migrate | api | beat | worker | all | sandbox`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin arauto

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/arauto /usr/local/bin/arauto
COPY config ./config
COPY holidays ./holidays
ENV ARAUTO_ENV=production
ENTRYPOINT ["arauto"]
