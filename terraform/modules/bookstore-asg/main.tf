# The bookstore app on an autoscaling group: a launch template whose user-data (cloud-init)
# installs envkit and its cron jobs, the group, and a target group whose health check is the
# same check proxy-check makes from cron on each instance.

locals {
  # What user-data.sh reads, written by cloud-init before it runs.
  user_data_settings = {
    ENVKIT_DEB_URL          = var.envkit_deb_url
    APP_PORT                = tostring(var.app_port)
    HEALTH_PATH             = var.health_check_path
    HEALTH_INTERVAL         = tostring(var.health_check_interval)
    HEALTH_TIMEOUT          = tostring(var.health_check_timeout)
    HEALTHY_THRESHOLD       = tostring(var.healthy_threshold)
    UNHEALTHY_THRESHOLD     = tostring(var.unhealthy_threshold)
    DATABASE_HOST           = var.database_host
    DATABASE_NAME           = var.database_name
    BACKUP_SCHEDULE         = var.backup_schedule
    BACKUP_KEEP_DAILY       = tostring(var.backup_keep_daily)
  }
  cloud_config = {
    write_files = [
      {
        path        = "/etc/envkit/user-data.env"
        permissions = "0600"
        content     = join("", [for k, v in local.user_data_settings : "${k}='${replace(v, "'", "'\\''")}'\n"])
      },
      {
        path        = "/etc/envkit/backup.pw"
        permissions = "0600"
        content     = "${var.backup_password}\n"
      },
      {
        path        = "/usr/local/sbin/envkit-user-data"
        permissions = "0755"
        content     = file("${path.module}/user-data.sh")
      },
    ]
    runcmd = [["/usr/local/sbin/envkit-user-data"]]
  }
}

resource "aws_launch_template" "app" {
  name_prefix            = "${var.name}-"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = var.security_group_ids
  user_data              = base64encode("#cloud-config\n${yamlencode(local.cloud_config)}")

  metadata_options {
    http_tokens = "required"
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.name })
  }

  tags = var.tags
}

resource "aws_lb_target_group" "app" {
  name     = var.name
  port     = var.app_port
  protocol = "HTTP"
  vpc_id   = var.vpc_id

  # The same check as proxy-check's cron line on each instance (user-data.sh).
  health_check {
    protocol            = "HTTP"
    port                = tostring(var.app_port)
    path                = var.health_check_path
    matcher             = "200"
    interval            = var.health_check_interval
    timeout             = var.health_check_timeout
    healthy_threshold   = var.healthy_threshold
    unhealthy_threshold = var.unhealthy_threshold
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "app" {
  name_prefix         = "${var.name}-"
  min_size            = var.min_size
  max_size            = var.max_size
  desired_capacity    = var.desired_capacity
  vpc_zone_identifier = var.subnet_ids
  target_group_arns   = [aws_lb_target_group.app.arn]
  health_check_type   = "ELB"

  launch_template {
    id      = aws_launch_template.app.id
    version = aws_launch_template.app.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    precondition {
      condition     = var.min_size <= var.desired_capacity && var.desired_capacity <= var.max_size
      error_message = "Need min_size <= desired_capacity <= max_size."
    }
  }
}
