ARG X=1
# comment
FROM golang:1 AS build
RUN a && \
    # inner comment
    b && \
    c
FROM scratch
COPY --from=build /x /x
