ARG X=1
ARG BASE=scratch
# comment
FROM golang:${X} AS build
RUN a && \
    # inner comment
    b && \
    c
FROM ${BASE}
COPY --from=build /x /x
